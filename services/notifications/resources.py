"""Notifications' HTTP resources: parse, call the logic, respond."""

from __future__ import annotations

import falcon

from contracts import notifications as wire
from services.common.clients import ProfilesClient
from services.common.web import id_param, page, read_body, respond
from services.notifications import logic
from services.notifications.mailer import Mailer
from services.notifications.store import LetterStore


class LettersResource:
    def __init__(
        self, store: LetterStore, profiles: ProfilesClient, mailer: Mailer | None, delivery_claim: float
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.mailer = mailer
        self.delivery_claim = delivery_claim

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_body(req, wire.LetterRequest)
        letter, created = logic.send_letter(self.store, data, self.profiles, self.mailer, self.delivery_claim)
        respond(resp, letter, 201 if created else 200)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, logic.listing(self.store, id_param(req, "user_id"), id_param(req, "order_id"), page(req)))


class LetterResource:
    def __init__(self, store: LetterStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, letter_id: object) -> None:
        respond(resp, logic.get(self.store, str(letter_id)))
