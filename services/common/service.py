"""The skeleton of an internal service app: its store's database, trust, errors, health,
readiness."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import falcon
from opentelemetry.trace import Tracer

from contracts.operations import Operation
from services.common import db as database
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.readiness import add_readiness
from services.common.tracing import NO_TRACING
from services.common.trust import TrustMiddleware
from services.common.web import base_app

__all__ = ["internal_app"]


def internal_app(
    service: str,
    settings: Settings,
    store: database.Store,
    operations: Iterable[Operation],
    domain_errors: Mapping[type[Exception], Mapped] | None = None,
    tracer: Tracer = NO_TRACING,
) -> falcon.App:
    """The app before its routes: a connection to ``store``'s database for each request
    that needs one, its errors answered, and readiness asking it."""
    app = base_app(
        service,
        max_body=settings.max_body,
        middleware=[TrustMiddleware(service, settings.secret(), operations), database.DatabaseMiddleware(store.db)],
        domain_errors=domain_errors,
        tracer=tracer,
        # The caller of an internal service draws the calls it made (the console).
        report_calls=True,
    )
    database.install_errors(app, store.db)
    add_readiness(app, service, {"database": store.check})
    return app
