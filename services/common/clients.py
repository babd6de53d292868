"""Typed clients for each service, built on :class:`ServiceClient` and the contracts.

The statuses a call accepts and the classes it structures come from the contract's
operation table, so a client cannot expect something its provider does not document.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Tracer

from contracts import auth, billing, notifications, orders, profiles
from contracts.operations import Operation
from services.common.http import Reply, ServiceClient, client_options
from services.common.tracing import NO_TRACING
from services.common.trust import ServiceTokens


def _operation(operations: tuple[Operation, ...], name: str) -> Operation:
    return next(op for op in operations if op.name == name)


class _Typed:
    OPERATIONS: tuple[Operation, ...] = ()

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    def _call(self, name: str, *, idempotent: bool, body: Any = None, query: Any = None, **path: str) -> Reply:
        op = _operation(self.OPERATIONS, name)
        return self.http.call(
            op.method,
            op.path.format(**path),
            op.responses,
            body=body,
            query=query,
            idempotent=idempotent,
            route=op.path,
        )


class AuthClient(_Typed):
    OPERATIONS = auth.OPERATIONS

    def register(self, data: auth.Registration) -> Reply:
        # Registration is idempotent per login and password: a retry finishes it.
        return self._call("register", body=data, idempotent=True)

    def login(self, data: auth.Credentials) -> Reply:
        # Not retried: each attempt counts towards the login throttle.
        return self._call("login", body=data, idempotent=False)

    def jwks(self) -> Reply:
        return self._call("jwks", idempotent=True)


class ProfilesClient(_Typed):
    OPERATIONS = profiles.OPERATIONS

    def put_profile(self, user_id: str, data: profiles.ProfileData) -> Reply:
        return self._call("put_profile", body=data, idempotent=True, user_id=user_id)

    def get_profile(self, user_id: str) -> Reply:
        return self._call("get_profile", idempotent=True, user_id=user_id)


class BillingClient(_Typed):
    OPERATIONS = billing.OPERATIONS

    def open_wallet(self, user_id: str, currency: str) -> Reply:
        return self._call("open_wallet", body=billing.NewWallet(currency), idempotent=True, user_id=user_id)

    def get_wallet(self, user_id: str) -> Reply:
        return self._call("get_wallet", idempotent=True, user_id=user_id)

    def list_operations(self, user_id: str, limit: int, offset: int, before: str | None = None) -> Reply:
        query = {"limit": limit, "offset": offset, "before": before}
        return self._call("list_operations", idempotent=True, query=query, user_id=user_id)

    def deposit(self, user_id: str, data: billing.Deposit) -> Reply:
        # Retried only when a key makes the retry land on the same deposit.
        return self._call("deposit", body=data, idempotent=data.idempotency_key is not None, user_id=user_id)

    def pay(self, data: billing.PaymentRequest) -> Reply:
        return self._call("pay", body=data, idempotent=True)

    def get_payment(self, order_id: str) -> Reply:
        return self._call("get_payment", idempotent=True, order_id=order_id)

    def abandon_payment(self, data: billing.PaymentRequest) -> Reply:
        terms = billing.Abandonment(user_id=data.user_id, amount=data.amount, currency=data.currency)
        return self._call("abandon_payment", body=terms, idempotent=True, order_id=data.order_id)


class OrdersClient(_Typed):
    OPERATIONS = orders.OPERATIONS

    def create_order(self, data: orders.NewOrder) -> Reply:
        return self._call("create_order", body=data, idempotent=True)

    def list_orders(self, **query: Any) -> Reply:
        return self._call("list_orders", idempotent=True, query=query)

    def get_order(self, order_id: str) -> Reply:
        return self._call("get_order", idempotent=True, order_id=order_id)

    def set_status(self, order_id: str, change: orders.StatusChange) -> Reply:
        return self._call("set_status", body=change, idempotent=True, order_id=order_id)

    def release_order(self, order_id: str, run_id: str) -> Reply:
        return self._call("release_order", idempotent=True, query={"run_id": run_id}, order_id=order_id)


class NotificationsClient(_Typed):
    OPERATIONS = notifications.OPERATIONS

    def send_letter(self, data: notifications.LetterRequest) -> Reply:
        return self._call("send_letter", body=data, idempotent=True)

    def list_letters(self, **query: Any) -> Reply:
        return self._call("list_letters", idempotent=True, query=query)

    def get_letter(self, letter_id: str) -> Reply:
        return self._call("get_letter", idempotent=True, letter_id=letter_id)


CLIENTS: dict[str, type[_Typed]] = {
    "auth": AuthClient,
    "profiles": ProfilesClient,
    "orders": OrdersClient,
    "billing": BillingClient,
    "notifications": NotificationsClient,
}


def make_client(
    kind: type[Any],
    caller: str,
    target: str,
    settings: Any,
    pool_size: int | None = None,
    tracer: Tracer = NO_TRACING,
) -> Any:
    """A typed client from ``caller`` to ``target`` with the configured transport; with
    ``tracer``, each call is a client span carrying the trace on."""
    options = client_options(settings, pool_size or settings.thread_count(caller))
    tokens = ServiceTokens(settings.secret(), caller)
    return kind(ServiceClient(target, settings.url(target), tokens, options, tracer=tracer))
