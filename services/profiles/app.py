"""Profiles' app factory."""

from __future__ import annotations

import falcon

from contracts import profiles as wire
from services.common.config import Settings
from services.common.service import internal_app
from services.common.tracing import Tracing
from services.profiles.resources import ProfileResource
from services.profiles.store import ProfileStore

SERVICE = "profiles"


def create_app(settings: Settings, *, store: ProfileStore | None = None, tracing: Tracing | None = None) -> falcon.App:
    """Profiles, keeping its data in ``store`` (by default, the database the settings
    name)."""
    store = store or ProfileStore.open(settings)
    tracing = tracing or Tracing(SERVICE)
    app = internal_app(SERVICE, settings, store, wire.OPERATIONS, tracer=tracing.tracer)
    app.add_route("/profiles/{user_id:uuid}", ProfileResource(store))
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
