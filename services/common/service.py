"""The skeleton of an internal service app: database, trust, errors, health, readiness."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import falcon
import peewee

from contracts.operations import Operation
from services.common import db as database
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.trust import TrustMiddleware
from services.common.web import base_app

Check = Callable[[], str]


class Readiness:
    """Ready: the database answers and so do the services this one calls."""

    def __init__(self, service: str, checks: Mapping[str, Check]) -> None:
        self.service = service
        self.checks = checks

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = {name: check() for name, check in self.checks.items()}
        ready = all(value == "ok" for value in results.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {"status": "ready" if ready else "not_ready", "service": self.service, "checks": results}


def internal_app(
    service: str,
    settings: Settings,
    models: Sequence[type[peewee.Model]],
    operations: Iterable[Operation],
    domain_errors: Mapping[type[Exception], Mapped] | None = None,
) -> tuple[falcon.App, peewee.Database]:
    db = database.open_database(settings.database(service), max_connections=settings.thread_count(service) + 4)
    database.create_schema(db, models)
    app = base_app(
        service,
        max_body=settings.max_body,
        middleware=[TrustMiddleware(service, settings.secret(), operations), database.DatabaseMiddleware(db)],
        domain_errors=domain_errors,
    )
    return app, db


def add_readiness(app: falcon.App, service: str, checks: Mapping[str, Check]) -> None:
    app.add_route("/ready", Readiness(service, checks))


def downstream_check(client: Any) -> Check:
    """A caller is ready when the service it calls answers its health route."""

    def check() -> str:
        try:
            client.call("GET", "/health", {200: None}, idempotent=False)
        except Exception as exc:  # any failure means not ready; the reason is reported
            return f"failed: {type(exc).__name__}"
        return "ok"

    return check
