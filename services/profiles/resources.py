"""Profiles' HTTP resources: parse, call the logic, respond."""

from __future__ import annotations

import falcon
import peewee

from contracts import profiles as wire
from services.common.web import read_body, respond
from services.profiles import logic


class ProfileResource:
    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        data = read_body(req, wire.ProfileData)
        profile, created = logic.put_profile(self.db, str(user_id), data)
        respond(resp, profile, 201 if created else 200)

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        respond(resp, logic.get_profile(self.db, str(user_id)))
