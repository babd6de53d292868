"""Billing's app factory."""

from __future__ import annotations

import falcon

from contracts import billing as wire
from contracts import vocabulary as words
from services.billing import logic, resources
from services.billing.store import BillingStore
from services.common.config import Settings
from services.common.errors import Mapped
from services.common.service import internal_app
from services.common.tracing import Tracing

SERVICE = "billing"

ERRORS = {
    logic.CurrencyMismatch: Mapped(409, "currency_mismatch", "Wallet exists in another currency"),
    logic.KeyReused: Mapped(409, "idempotency_key_reused", "Idempotency key reused"),
    logic.PaymentConflict: Mapped(409, "payment_conflict", "Another payment exists for this order"),
    logic.NoWallet: Mapped(404, words.NO_WALLET, "No wallet for this customer"),
}


def create_app(settings: Settings, *, store: BillingStore | None = None, tracing: Tracing | None = None) -> falcon.App:
    """Billing, keeping its wallets in ``store`` (by default, the database the settings
    name)."""
    store = store or BillingStore.open(settings)
    tracing = tracing or Tracing(SERVICE)
    app = internal_app(SERVICE, settings, store, wire.OPERATIONS, ERRORS, tracer=tracing.tracer)
    app.add_route("/wallets/{user_id:uuid}", resources.WalletResource(store))
    app.add_route("/wallets/{user_id:uuid}/operations", resources.OperationsResource(store))
    app.add_route("/wallets/{user_id:uuid}/deposits", resources.DepositsResource(store))
    app.add_route("/payments", resources.PaymentsResource(store))
    app.add_route("/payments/{order_id:uuid}", resources.PaymentResource(store))
    app.add_route("/payments/{order_id:uuid}/abandon", resources.AbandonResource(store))
    return app


def get_app() -> falcon.App:
    return create_app(Settings.from_env())
