"""Auth's HTTP resources: parse, call the logic, respond."""

from __future__ import annotations

import falcon

from contracts import auth as wire
from services.auth import keys, logic
from services.auth.passwords import Cost
from services.auth.store import AuthStore
from services.common.clients import BillingClient, ProfilesClient
from services.common.config import Settings
from services.common.errors import ApiError
from services.common.web import read_body, respond


class UsersResource:
    def __init__(
        self, store: AuthStore, settings: Settings, cost: Cost, profiles: ProfilesClient, billing: BillingClient
    ) -> None:
        self.store = store
        self.settings = settings
        self.cost = cost
        self.profiles = profiles
        self.billing = billing

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_body(req, wire.Registration)
        user = logic.register(self.store, data, self.profiles, self.billing, self.settings.currency, self.cost)
        respond(resp, user, 201)


class TokensResource:
    def __init__(self, store: AuthStore, settings: Settings, cost: Cost, signer: keys.Signer) -> None:
        self.store = store
        self.settings = settings
        self.cost = cost
        self.signer = signer

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_body(req, wire.Credentials)
        try:
            token = logic.login(
                self.store,
                data,
                self.signer,
                self.settings.login_max_failures,
                self.settings.login_window,
                self.cost,
            )
        except logic.TooManyAttempts as exc:
            raise ApiError(
                429,
                "too_many_attempts",
                "Too many failed logins",
                str(exc),
                headers={"Retry-After": str(exc.retry_after)},
            ) from exc
        resp.set_header("Cache-Control", "no-store")
        respond(resp, token)


class JwksResource:
    def __init__(self, store: AuthStore, token_ttl: int) -> None:
        self.store = store
        self.token_ttl = token_ttl

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, keys.published(self.store, self.token_ttl))
