"""Orders: orders and their status."""

from __future__ import annotations

import re

import attrs

from contracts import types
from contracts.errors import ErrorBody
from contracts.operations import GATEWAY, PAGE_QUERY, Operation, Query

# A time in a query: UTC, as the services write times (``services.common.clock.iso``).
# Year 0000 and leap seconds are valid RFC 3339 that no Python datetime holds.
UTC_TIME_RE = re.compile(
    r"^(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z$"
)
UTC_TIME = {"format": "date-time", "pattern": UTC_TIME_RE.pattern}


@attrs.frozen
class Item:
    name: str = attrs.field(validator=types.text(1, 200))
    quantity: int = attrs.field(validator=types.quantity)
    price: int = attrs.field(validator=types.amount)


@attrs.frozen
class NewOrder:
    """What the gateway asks Orders to create (step 3).

    ``idempotency_key`` scopes a retry to the same order; ``run_id`` claims the order
    for the flow run that is finishing it, so a parallel run of the same key gets 409.
    """

    user_id: str = attrs.field(validator=types.identifier)
    items: list[Item] = attrs.field(validator=types.items_count)
    currency: str = attrs.field(validator=types.currency)
    idempotency_key: str = attrs.field(validator=types.text(1, 128))
    run_id: str = attrs.field(validator=types.text(1, 128))


@attrs.frozen
class StatusChange:
    """Step 7: ``paid`` or ``cancelled``; the reason explains a cancellation."""

    status: str = attrs.field(validator=types.one_of(*types.FINAL_STATUSES))
    reason: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.text(1, 200)))
    payment_id: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.identifier))


@attrs.frozen
class Order:
    id: str = attrs.field(validator=types.identifier)
    user_id: str = attrs.field(validator=types.identifier)
    items: list[Item]
    total: int
    currency: str
    status: str = attrs.field(validator=types.one_of(*types.ORDER_STATUSES))
    reason: str | None
    payment_id: str | None
    created_at: str
    updated_at: str


@attrs.frozen
class OrderPage:
    """A page of orders, newest first. ``next_before`` is the ``before`` that asks for
    the next page (the ID of this page's last item), null on the last page."""

    items: list[Order]
    limit: int
    offset: int
    next_before: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.identifier))


OPERATIONS = (
    Operation(
        "POST",
        "/orders",
        "create_order",
        "Step 4: create a pending order, or return the one this idempotency key created",
        callers=frozenset({GATEWAY}),
        request=NewOrder,
        responses={200: Order, 201: Order, 409: ErrorBody, 422: ErrorBody},
    ),
    Operation(
        "GET",
        "/orders",
        "list_orders",
        "Orders, newest first, filtered by owner or status",
        callers=frozenset({GATEWAY}),
        responses={200: OrderPage, 422: ErrorBody},
        query=(
            Query("user_id", str, "only this user's orders", constraints=types.UUID_QUERY),
            Query("status", str, "only orders in this status", constraints={"enum": list(types.ORDER_STATUSES)}),
            Query("updated_before", str, "only orders last changed before this UTC time", constraints=UTC_TIME),
            Query("updated_after", str, "only orders last changed at or after this UTC time", constraints=UTC_TIME),
            *PAGE_QUERY,
        ),
    ),
    Operation(
        "GET",
        "/orders/{order_id}",
        "get_order",
        "One order",
        callers=frozenset({GATEWAY}),
        responses={200: Order, 404: ErrorBody},
    ),
    Operation(
        "PUT",
        "/orders/{order_id}/status",
        "set_status",
        "Step 8: pending -> paid or cancelled; repeating the same change is a no-op",
        callers=frozenset({GATEWAY}),
        request=StatusChange,
        responses={200: Order, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody},
    ),
    Operation(
        "DELETE",
        "/orders/{order_id}/run",
        "release_order",
        "Release a flow run's claim on an order so a retry can finish it at once",
        callers=frozenset({GATEWAY}),
        responses={204: None, 404: ErrorBody},
        query=(Query("run_id", str, "the run that holds the claim", required=True),),
    ),
)
