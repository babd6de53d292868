"""Auth's app factory."""

from __future__ import annotations

import falcon

from contracts import auth as wire
from services.auth import keys, logic, resources
from services.auth.passwords import Cost
from services.auth.store import AuthStore
from services.common.clients import BillingClient, ProfilesClient, make_client
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import internal_app
from services.common.tracing import Tracing

SERVICE = "auth"

ERRORS = {
    logic.LoginTaken: Mapped(409, "login_taken", "Login taken"),
    logic.InvalidCredentials: Mapped(401, "invalid_credentials", "Invalid credentials"),
    logic.RegistrationIncomplete: Mapped(409, "registration_incomplete", "Registration incomplete"),
}


def create_app(
    settings: Settings,
    *,
    store: AuthStore | None = None,
    profiles: ProfilesClient | None = None,
    billing: BillingClient | None = None,
    tracing: Tracing | None = None,
) -> falcon.App:
    """Auth, keeping its users and signing keys in ``store`` and calling Profiles and
    Billing through the given clients (by default: the database the settings name, and
    the services over HTTP at the configured URLs)."""
    cost = Cost(settings.password_hash_memory, settings.password_hash_time).check()
    store = store or AuthStore.open(settings)
    tracing = tracing or Tracing(SERVICE)
    app = internal_app(SERVICE, settings, store, wire.OPERATIONS, ERRORS, tracer=tracing.tracer)
    keys.ensure_key(store, settings.signing_key_file)
    profiles = profiles or make_client(ProfilesClient, SERVICE, "profiles", settings, tracer=tracing.tracer)
    billing = billing or make_client(BillingClient, SERVICE, "billing", settings, tracer=tracing.tracer)
    signer = keys.Signer(store, settings.token_issuer, settings.token_audience, settings.token_ttl)
    app.add_route("/users", resources.UsersResource(store, settings, cost, profiles, billing))
    app.add_route("/tokens", resources.TokensResource(store, settings, cost, signer))
    app.add_route("/.well-known/jwks.json", resources.JwksResource(store, settings.token_ttl))
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
