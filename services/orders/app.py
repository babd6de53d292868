"""Orders' app factory."""

from __future__ import annotations

import falcon

from contracts import orders as wire
from services.common import db as database
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import add_readiness, internal_app
from services.common.tracing import Tracing
from services.orders import logic, resources
from services.orders.models import MODELS

SERVICE = "orders"

ERRORS = {
    logic.KeyReused: Mapped(409, "idempotency_key_reused", "Idempotency key reused"),
    logic.InProgress: Mapped(409, "in_progress", "Order creation in progress"),
    logic.StatusConflict: Mapped(409, "status_conflict", "Order already final"),
    logic.Unreadable: Mapped(500, "order_unreadable", "Stored order cannot be read"),
}


def create_app(settings: Settings, *, tracing: Tracing | None = None) -> falcon.App:
    tracing = tracing or Tracing(SERVICE)
    app, db = internal_app(SERVICE, settings, MODELS, wire.OPERATIONS, ERRORS, tracer=tracing.tracer)
    app.add_route("/orders", resources.OrdersResource(db, settings.order_run_lease))
    app.add_route("/orders/{order_id:uuid}", resources.OrderResource())
    app.add_route("/orders/{order_id:uuid}/status", resources.StatusResource(db))
    app.add_route("/orders/{order_id:uuid}/run", resources.RunResource())
    add_readiness(app, SERVICE, {"database": lambda: database.check(db)})
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
