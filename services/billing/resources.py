"""Billing's HTTP resources: parse, call the logic, respond."""

from __future__ import annotations

import falcon

from contracts import billing as wire
from services.billing import logic
from services.billing.store import BillingStore
from services.common.errors import ApiError
from services.common.web import page, read_body, respond


class WalletResource:
    def __init__(self, store: BillingStore) -> None:
        self.store = store

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: object) -> None:
        data = read_body(req, wire.NewWallet)
        wallet, created = logic.open_wallet(self.store, str(user_id), data.currency)
        respond(resp, wallet, 201 if created else 200)

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: object) -> None:
        respond(resp, logic.get_wallet(self.store, str(user_id)))


class OperationsResource:
    def __init__(self, store: BillingStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: object) -> None:
        respond(resp, logic.list_operations(self.store, str(user_id), page(req)))


class DepositsResource:
    def __init__(self, store: BillingStore) -> None:
        self.store = store

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: object) -> None:
        data = read_body(req, wire.Deposit)
        result, created = logic.deposit(self.store, str(user_id), data)
        respond(resp, result, 201 if created else 200)


def declined(exc: logic.Declined) -> ApiError:
    """Step 6's refusal: 406 with the decline's code and text, the same on every retry."""
    payment = exc.payment
    assert payment.reason_code is not None and payment.reason is not None
    return ApiError(406, payment.reason_code, payment.reason, f"Payment for order {payment.order_id} was declined.")


class PaymentsResource:
    def __init__(self, store: BillingStore) -> None:
        self.store = store

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_body(req, wire.PaymentRequest)
        try:
            payment, created = logic.pay(self.store, data)
        except logic.Declined as exc:
            raise declined(exc) from exc
        respond(resp, payment, 201 if created else 200)


class PaymentResource:
    def __init__(self, store: BillingStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: object) -> None:
        respond(resp, logic.get_payment(self.store, str(order_id)))


class AbandonResource:
    def __init__(self, store: BillingStore) -> None:
        self.store = store

    def on_post(self, req: falcon.Request, resp: falcon.Response, order_id: object) -> None:
        terms = read_body(req, wire.Abandonment)
        request = wire.PaymentRequest(str(order_id), terms.user_id, terms.amount, terms.currency)
        payment, created = logic.abandon(self.store, request)
        respond(resp, payment, 201 if created else 200)
