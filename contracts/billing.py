"""Billing: wallets and wallet operations."""

from __future__ import annotations

import attrs

from contracts import types
from contracts import vocabulary as words
from contracts.errors import ErrorBody
from contracts.operations import AUTH, GATEWAY, PAGE_QUERY, Operation


@attrs.frozen
class NewWallet:
    currency: str = attrs.field(validator=types.currency)


@attrs.frozen
class Wallet:
    user_id: str = attrs.field(validator=types.identifier)
    balance: int
    currency: str
    created_at: str


@attrs.frozen
class WalletOperation:
    id: str = attrs.field(validator=types.identifier)
    user_id: str
    kind: str = attrs.field(validator=types.one_of(*words.OPERATION_KINDS))
    amount: int
    currency: str
    balance_after: int
    order_id: str | None
    created_at: str


@attrs.frozen
class OperationPage:
    """A page of wallet operations, newest first. ``next_before`` is the ``before`` that asks for
    the next page (the ID of this page's last item), null on the last page."""

    items: list[WalletOperation]
    limit: int
    offset: int
    next_before: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.identifier))


@attrs.frozen
class Deposit:
    amount: int = attrs.field(validator=types.amount)
    idempotency_key: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.text(1, 128)))


@attrs.frozen
class DepositResult:
    operation: WalletOperation
    wallet: Wallet


@attrs.frozen
class PaymentRequest:
    order_id: str = attrs.field(validator=types.identifier)
    user_id: str = attrs.field(validator=types.identifier)
    amount: int = attrs.field(validator=types.total)
    currency: str = attrs.field(validator=types.currency)


@attrs.frozen
class Abandonment:
    """The terms of the payment an order will never make; the order is the path's."""

    user_id: str = attrs.field(validator=types.identifier)
    amount: int = attrs.field(validator=types.total)
    currency: str = attrs.field(validator=types.currency)


@attrs.frozen
class Payment:
    """Billing's one decision for an order: ``debited`` with its operation, or
    ``declined`` with the reason: ``reason_code`` for programs, ``reason`` for people.
    The first decision for an order is final."""

    id: str = attrs.field(validator=types.identifier)
    order_id: str
    user_id: str
    amount: int
    currency: str
    outcome: str = attrs.field(validator=types.one_of(*words.PAYMENT_OUTCOMES))
    reason: str | None
    operation: WalletOperation | None
    created_at: str
    reason_code: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(types.one_of(*words.DECLINE_CODES))
    )


OPERATIONS = (
    Operation(
        "PUT",
        "/wallets/{user_id}",
        "open_wallet",
        "Open a user's wallet; opening it again is a no-op",
        callers=frozenset({AUTH}),
        request=NewWallet,
        responses={200: Wallet, 201: Wallet, 409: ErrorBody, 422: ErrorBody},
    ),
    Operation(
        "GET",
        "/wallets/{user_id}",
        "get_wallet",
        "A wallet's balance and currency",
        callers=frozenset({GATEWAY}),
        responses={200: Wallet, 404: ErrorBody},
    ),
    Operation(
        "GET",
        "/wallets/{user_id}/operations",
        "list_operations",
        "A wallet's operations, newest first",
        callers=frozenset({GATEWAY}),
        responses={200: OperationPage, 404: ErrorBody, 422: ErrorBody},
        query=PAGE_QUERY,
    ),
    Operation(
        "POST",
        "/wallets/{user_id}/deposits",
        "deposit",
        "Top up a wallet",
        callers=frozenset({GATEWAY}),
        request=Deposit,
        responses={200: DepositResult, 201: DepositResult, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody},
    ),
    Operation(
        "POST",
        "/payments",
        "pay",
        "Step 6: debit the order's amount if the balance covers it; 406 if it does not, 404 without a wallet",
        callers=frozenset({GATEWAY}),
        request=PaymentRequest,
        responses={200: Payment, 201: Payment, 404: ErrorBody, 406: ErrorBody, 409: ErrorBody, 422: ErrorBody},
    ),
    Operation(
        "GET",
        "/payments/{order_id}",
        "get_payment",
        "Billing's decision for an order",
        callers=frozenset({GATEWAY}),
        responses={200: Payment, 404: ErrorBody},
    ),
    Operation(
        "POST",
        "/payments/{order_id}/abandon",
        "abandon_payment",
        "Record a decline for an order that never reached payment; return the decision that stands",
        callers=frozenset({GATEWAY}),
        request=Abandonment,
        responses={200: Payment, 201: Payment, 409: ErrorBody, 422: ErrorBody},
    ),
)
