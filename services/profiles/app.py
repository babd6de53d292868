"""Profiles' app factory."""

from __future__ import annotations

import falcon

from contracts import profiles as wire
from services.common import db as database
from services.common.config import Settings
from services.common.service import add_readiness, internal_app
from services.common.tracing import Tracing
from services.profiles.models import MODELS
from services.profiles.resources import ProfileResource

SERVICE = "profiles"


def create_app(settings: Settings, *, tracing: Tracing | None = None) -> falcon.App:
    tracing = tracing or Tracing(SERVICE)
    app, db = internal_app(SERVICE, settings, MODELS, wire.OPERATIONS, tracer=tracing.tracer)
    app.add_route("/profiles/{user_id:uuid}", ProfileResource(db))
    add_readiness(app, SERVICE, {"database": lambda: database.check(db)})
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
