"""Notifications' app factory."""

from __future__ import annotations

import falcon

from contracts import notifications as wire
from services.common import db as database
from services.common.clients import ProfilesClient, make_client
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import add_readiness, internal_app
from services.notifications import logic, resources
from services.notifications.mailer import mailer_from
from services.notifications.models import MODELS

SERVICE = "notifications"

ERRORS = {logic.NoProfile: Mapped(404, "profile_not_found", "No contact data for the customer")}


def create_app(settings: Settings) -> falcon.App:
    mailer = mailer_from(settings)
    app, db = internal_app(SERVICE, settings, MODELS, wire.OPERATIONS, ERRORS)
    profiles = make_client(ProfilesClient, SERVICE, "profiles", settings)
    app.add_route("/letters", resources.LettersResource(db, profiles, mailer, settings.delivery_claim))
    app.add_route("/letters/{letter_id:uuid}", resources.LetterResource())
    add_readiness(app, SERVICE, {"database": lambda: database.check(db)})
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
