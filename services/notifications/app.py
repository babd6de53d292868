"""Notifications' app factory."""

from __future__ import annotations

import falcon

from contracts import notifications as wire
from services.common.clients import ProfilesClient, make_client
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import internal_app
from services.common.tracing import Tracing
from services.notifications import logic, resources
from services.notifications.mailer import Mailer, mailer_from
from services.notifications.store import LetterStore

SERVICE = "notifications"

ERRORS = {logic.NoProfile: Mapped(404, "profile_not_found", "No contact data for the customer")}


def create_app(
    settings: Settings,
    *,
    store: LetterStore | None = None,
    profiles: ProfilesClient | None = None,
    mailer: Mailer | None = None,
    tracing: Tracing | None = None,
) -> falcon.App:
    """Notifications, keeping its letters in ``store``, looking customers up through
    ``profiles`` and delivering through ``mailer`` (by default: the database the
    settings name, Profiles over HTTP, and SMTP when a host is configured)."""
    store = store or LetterStore.open(settings)
    tracing = tracing or Tracing(SERVICE)
    app = internal_app(SERVICE, settings, store, wire.OPERATIONS, ERRORS, tracer=tracing.tracer)
    profiles = profiles or make_client(ProfilesClient, SERVICE, "profiles", settings, tracer=tracing.tracer)
    if mailer is None:
        mailer = mailer_from(settings)
    app.add_route("/letters", resources.LettersResource(store, profiles, mailer, settings.delivery_claim))
    app.add_route("/letters/{letter_id:uuid}", resources.LetterResource(store))
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
