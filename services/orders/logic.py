"""What Orders does, apart from HTTP."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from typing import Any

import attrs
import peewee
from cattrs.errors import BaseValidationError

from contracts import orders as wire
from contracts.converter import printable, problems, structure, unstructure
from contracts.types import new_id, scrub
from services.common.db import Page, iso, utcnow
from services.common.errors import NotFound
from services.orders.models import Order
from services.orders.store import OrderStore, Selection

PENDING = "pending"
log = logging.getLogger(__name__)


class KeyReused(Exception):
    """The idempotency key came back with a different order."""


class InProgress(Exception):
    """Another flow run is finishing this order right now."""


class StatusConflict(Exception):
    """The order is already final with the other status."""


class Unreadable(Exception):
    """A stored order that no longer fits the contract (a damaged row): Orders will not
    send what its callers would refuse."""


def to_wire(row: Order, items: list[wire.Item] | None = None) -> wire.Order:
    """The order as its callers read it. ``items`` when they are at hand already (a new
    order's, as its request gave them); otherwise they are read from the row."""
    try:
        return wire.Order(
            id=row.id,
            user_id=row.user_id,
            items=_items(row.items) if items is None else items,
            total=row.total,
            currency=row.currency,
            status=row.status,
            reason=row.reason,
            payment_id=row.payment_id,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )
    except Exception as exc:
        # Whatever the row holds: the caller gets a clear error, the log names the row.
        found = "; ".join(f"{p.path}: {p.message}" for p in problems(exc))
        log.error("order %s (row %s) cannot be sent back: %s", printable(str(row.id)), row.seq, printable(found))
        raise Unreadable(f"Order {printable(str(row.id))} is stored in a form the contract refuses.") from None


def _items(stored: str) -> list[wire.Item]:
    items = json.loads(stored)
    try:
        return structure(items, list[wire.Item])
    except BaseValidationError:
        if type(items) is not list:
            raise
        # Names written before text was checked: sent with U+FFFD for what is now refused.
        return structure([_scrubbed(item) for item in items], list[wire.Item])


def _scrubbed(item: Any) -> Any:
    if type(item) is dict and type(item.get("name")) is str:
        return {**item, "name": scrub(item["name"])}
    return item


def order_fingerprint(items: list[dict[str, object]], currency: str) -> str:
    canonical = json.dumps({"items": items, "currency": currency}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def create(store: OrderStore, request: wire.NewOrder, lease_seconds: float) -> tuple[wire.Order, bool]:
    """Step 4: a new pending order, or the one this key already made. The run that
    calls claims the order until its lease ends, so a parallel run of the same key is
    refused while a retry after a failure can take over."""
    # At most types.MAX_TOTAL: the item bounds see to it.
    total = sum(item.quantity * item.price for item in request.items)
    items = unstructure(request.items)
    fingerprint = order_fingerprint(items, request.currency)
    for _attempt in range(2):
        now = utcnow()
        lease_end = now + datetime.timedelta(seconds=lease_seconds)
        try:
            with store.write_transaction():
                # Most keys are new: insert first, and look for the earlier order only
                # when the unique key refuses (the savepoint keeps the transaction usable).
                new = Order(
                    id=new_id(),
                    user_id=request.user_id,
                    items=json.dumps(items),
                    total=total,
                    currency=request.currency,
                    status=PENDING,
                    idempotency_key=request.idempotency_key,
                    fingerprint=fingerprint,
                    run_id=request.run_id,
                    run_expires=lease_end,
                    created_at=now,
                    updated_at=now,
                )
                try:
                    with store.savepoint():
                        store.add_order(new)
                    return to_wire(new, request.items), True
                except peewee.IntegrityError:
                    row = store.by_key(request.user_id, request.idempotency_key)
                if row.fingerprint != fingerprint:
                    raise KeyReused("This Idempotency-Key was used for a different order.")
                if row.status == PENDING:
                    # A claim counts as activity: recovery leaves the order to this run.
                    if not store.claim(row.id, PENDING, request.run_id, lease_end, now):
                        raise InProgress("This order is being created by another request; retry shortly.")
                    row.run_id, row.run_expires, row.updated_at = request.run_id, lease_end, now
                return to_wire(row), False
        except peewee.IntegrityError:
            continue
    raise InProgress("This order is being created by another request; retry shortly.")


def get(store: OrderStore, order_id: str) -> wire.Order:
    row = store.order(order_id)
    if row is None:
        raise NotFound("No such order.")
    return to_wire(row)


def listing(store: OrderStore, selection: Selection, page: Page) -> wire.OrderPage:
    rows, following = store.listing(selection, page)
    items = [to_wire(row) for row in rows]
    return wire.OrderPage(items=items, limit=page.limit, offset=page.offset, next_before=following)


def set_status(store: OrderStore, order_id: str, change: wire.StatusChange) -> wire.Order:
    """Step 8: only pending -> paid | cancelled; asking again for the status the order
    already has is answered with the order, unchanged."""
    with store.write_transaction():
        changed = store.finish(order_id, PENDING, change.status, change.reason, change.payment_id, utcnow())
        row = store.order(order_id)
        if row is None:
            raise NotFound("No such order.")
        if changed or row.status == change.status:
            return to_wire(row)
        raise StatusConflict(f"The order is already {row.status}.")


def release(store: OrderStore, order_id: str, run_id: str) -> None:
    """Drop a run's claim so the next retry need not wait for the lease to end."""
    # No run holds a claim under an ID the contract refuses (PostgreSQL refuses a NUL).
    released = _is_run_id(run_id) and store.release(order_id, run_id)
    if not released and store.order(order_id) is None:
        raise NotFound("No such order.")


def _is_run_id(text: str) -> bool:
    field = attrs.fields(wire.NewOrder).run_id
    try:
        field.validator(None, field, text)
    except ValueError:
        return False
    return True
