"""The gateway: the only public door. Bodies a client sends and receives."""

from __future__ import annotations

import attrs

from contracts import types
from contracts.auth import AccessToken, Credentials, Registration, User
from contracts.billing import DepositResult, OperationPage, Wallet, WalletOperation
from contracts.errors import ErrorBody
from contracts.notifications import Letter, LetterPage
from contracts.operations import ANYONE, CLIENT, PAGE_QUERY, Operation
from contracts.orders import Item, Order, OrderPage
from contracts.profiles import Profile


@attrs.frozen
class OrderRequest:
    """Step 1. Status, ID, owner and total are not fields: the client cannot set them."""

    user_id: str = attrs.field(validator=types.identifier)
    items: list[Item] = attrs.field(validator=types.items_count)
    currency: str = attrs.field(validator=types.currency)


@attrs.frozen
class DepositRequest:
    amount: int = attrs.field(validator=types.amount)


@attrs.frozen
class OrderResult:
    """Step 11: the order, the payment operation if money moved, and the letter."""

    order: Order
    payment: WalletOperation | None
    letter_id: str | None
    letter_pending: bool = False


FLOW_ERRORS = {400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody, 413: ErrorBody, 422: ErrorBody}
DOWNSTREAM_ERRORS = {502: ErrorBody, 503: ErrorBody, 504: ErrorBody}

OPERATIONS = (
    Operation(
        "POST",
        "/auth/register",
        "register",
        "Register: Auth creates the user, its profile and its wallet",
        callers=frozenset({ANYONE}),
        request=Registration,
        responses={201: User, 400: ErrorBody, 409: ErrorBody, 413: ErrorBody, 422: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "POST",
        "/auth/login",
        "login",
        "Log in: a signed access token",
        callers=frozenset({ANYONE}),
        request=Credentials,
        responses={
            200: AccessToken,
            400: ErrorBody,
            401: ErrorBody,
            409: ErrorBody,
            422: ErrorBody,
            429: ErrorBody,
            **DOWNSTREAM_ERRORS,
        },
    ),
    Operation(
        "GET",
        "/profile",
        "get_profile",
        "The caller's profile",
        callers=frozenset({CLIENT}),
        responses={200: Profile, 401: ErrorBody, 404: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "GET",
        "/wallet",
        "get_wallet",
        "The caller's balance and currency",
        callers=frozenset({CLIENT}),
        responses={200: Wallet, 401: ErrorBody, 404: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "GET",
        "/wallet/operations",
        "list_operations",
        "The caller's wallet operations, newest first",
        callers=frozenset({CLIENT}),
        query=PAGE_QUERY,
        responses={200: OperationPage, 401: ErrorBody, 404: ErrorBody, 422: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "POST",
        "/wallet/deposits",
        "deposit",
        "Top up the caller's wallet",
        callers=frozenset({CLIENT}),
        request=DepositRequest,
        headers=("Idempotency-Key",),
        responses={201: DepositResult, 200: DepositResult, 404: ErrorBody, **FLOW_ERRORS, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "POST",
        "/orders",
        "create_order",
        "Create an order: the eleven steps of the synchronous flow",
        callers=frozenset({CLIENT}),
        request=OrderRequest,
        headers=("Idempotency-Key",),
        responses={201: OrderResult, **FLOW_ERRORS, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "GET",
        "/orders",
        "list_orders",
        "The caller's orders, newest first",
        callers=frozenset({CLIENT}),
        query=PAGE_QUERY,
        responses={200: OrderPage, 401: ErrorBody, 422: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "GET",
        "/orders/{order_id}",
        "get_order",
        "One of the caller's orders",
        callers=frozenset({CLIENT}),
        responses={200: Order, 401: ErrorBody, 404: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "GET",
        "/letters",
        "list_letters",
        "Letters sent to the caller, newest first",
        callers=frozenset({CLIENT}),
        query=PAGE_QUERY,
        responses={200: LetterPage, 401: ErrorBody, 422: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
    Operation(
        "GET",
        "/letters/{letter_id}",
        "get_letter",
        "One letter sent to the caller",
        callers=frozenset({CLIENT}),
        responses={200: Letter, 401: ErrorBody, 404: ErrorBody, **DOWNSTREAM_ERRORS},
    ),
)
