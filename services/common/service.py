"""The skeleton of an internal service app: database, trust, errors, health, readiness."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import falcon
import peewee
from opentelemetry.trace import Tracer

from contracts.operations import Operation
from services.common import db as database
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.readiness import add_readiness
from services.common.tracing import NO_TRACING
from services.common.trust import TrustMiddleware
from services.common.web import base_app

__all__ = ["add_readiness", "internal_app"]


def internal_app(
    service: str,
    settings: Settings,
    models: Sequence[type[peewee.Model]],
    operations: Iterable[Operation],
    domain_errors: Mapping[type[Exception], Mapped] | None = None,
    tracer: Tracer = NO_TRACING,
) -> tuple[falcon.App, peewee.Database]:
    db = database.open_database(settings.database(service), max_connections=settings.thread_count(service) + 4)
    database.create_schema(db, models)
    app = base_app(
        service,
        max_body=settings.max_body,
        middleware=[TrustMiddleware(service, settings.secret(), operations), database.DatabaseMiddleware(db)],
        domain_errors=domain_errors,
        tracer=tracer,
        # The caller of an internal service draws the calls it made (the console).
        report_calls=True,
    )
    database.install_errors(app, db)
    return app, db
