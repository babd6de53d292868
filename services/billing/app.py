"""Billing's app factory."""

from __future__ import annotations

import falcon

from contracts import billing as wire
from contracts import vocabulary as words
from services.billing import logic, resources
from services.billing.models import MODELS
from services.common import db as database
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import add_readiness, internal_app
from services.common.tracing import Tracing

SERVICE = "billing"

ERRORS = {
    logic.CurrencyMismatch: Mapped(409, "currency_mismatch", "Wallet exists in another currency"),
    logic.KeyReused: Mapped(409, "idempotency_key_reused", "Idempotency key reused"),
    logic.PaymentConflict: Mapped(409, "payment_conflict", "Another payment exists for this order"),
    logic.NoWallet: Mapped(404, words.NO_WALLET, "No wallet for this customer"),
}


def create_app(settings: Settings, *, tracing: Tracing | None = None) -> falcon.App:
    tracing = tracing or Tracing(SERVICE)
    app, db = internal_app(SERVICE, settings, MODELS, wire.OPERATIONS, ERRORS, tracer=tracing.tracer)
    app.add_route("/wallets/{user_id:uuid}", resources.WalletResource(db))
    app.add_route("/wallets/{user_id:uuid}/operations", resources.OperationsResource())
    app.add_route("/wallets/{user_id:uuid}/deposits", resources.DepositsResource(db))
    app.add_route("/payments", resources.PaymentsResource(db))
    app.add_route("/payments/{order_id:uuid}", resources.PaymentResource())
    app.add_route("/payments/{order_id:uuid}/abandon", resources.AbandonResource(db))
    add_readiness(app, SERVICE, {"database": lambda: database.check(db)})
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
