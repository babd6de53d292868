"""Profiles' HTTP resources: parse, call the logic, respond."""

from __future__ import annotations

import falcon

from contracts import profiles as wire
from services.common.web import read_body, respond
from services.profiles import logic
from services.profiles.store import ProfileStore


class ProfileResource:
    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        data = read_body(req, wire.ProfileData)
        profile, created = logic.put_profile(self.store, str(user_id), data)
        respond(resp, profile, 201 if created else 200)

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        respond(resp, logic.get_profile(self.store, str(user_id)))
