"""Orders' app factory."""

from __future__ import annotations

import falcon

from contracts import orders as wire
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import internal_app
from services.common.tracing import Tracing
from services.orders import logic, resources
from services.orders.store import OrderStore

SERVICE = "orders"

ERRORS = {
    logic.KeyReused: Mapped(409, "idempotency_key_reused", "Idempotency key reused"),
    logic.InProgress: Mapped(409, "in_progress", "Order creation in progress"),
    logic.StatusConflict: Mapped(409, "status_conflict", "Order already final"),
    logic.Unreadable: Mapped(500, "order_unreadable", "Stored order cannot be read"),
}


def create_app(settings: Settings, *, store: OrderStore | None = None, tracing: Tracing | None = None) -> falcon.App:
    """Orders, keeping its data in ``store`` (by default, the database the settings
    name)."""
    store = store or OrderStore.open(settings)
    tracing = tracing or Tracing(SERVICE)
    app = internal_app(SERVICE, settings, store, wire.OPERATIONS, ERRORS, tracer=tracing.tracer)
    app.add_route("/orders", resources.OrdersResource(store, settings.order_run_lease))
    app.add_route("/orders/{order_id:uuid}", resources.OrderResource(store))
    app.add_route("/orders/{order_id:uuid}/status", resources.StatusResource(store))
    app.add_route("/orders/{order_id:uuid}/run", resources.RunResource(store))
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
