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
from services.common.db import iso, load, savepoint, utcnow, write_transaction
from services.common.errors import NotFound
from services.orders import models
from services.orders.models import Order

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


def to_wire(row: Order) -> wire.Order:
    try:
        return wire.Order(
            id=row.id,
            user_id=row.user_id,
            items=_items(row.items),
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


def _new_order(order_id: str, request: wire.NewOrder, total: int, now: datetime.datetime) -> wire.Order:
    return wire.Order(
        id=order_id,
        user_id=request.user_id,
        items=request.items,
        total=total,
        currency=request.currency,
        status=PENDING,
        reason=None,
        payment_id=None,
        created_at=iso(now),
        updated_at=iso(now),
    )


def _fingerprint(items: list[dict[str, object]], currency: str) -> str:
    canonical = json.dumps({"items": items, "currency": currency}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def create(db: peewee.Database, request: wire.NewOrder, lease_seconds: float) -> tuple[wire.Order, bool]:
    """Step 4: a new pending order, or the one this key already made. The run that
    calls claims the order until its lease ends, so a parallel run of the same key is
    refused while a retry after a failure can take over."""
    # At most types.MAX_TOTAL: the item bounds see to it.
    total = sum(item.quantity * item.price for item in request.items)
    items = unstructure(request.items)
    fingerprint = _fingerprint(items, request.currency)
    for _attempt in range(2):
        now = utcnow()
        lease_end = now + datetime.timedelta(seconds=lease_seconds)
        try:
            with write_transaction(db):
                # Most keys are new: insert first, and look for the earlier order only
                # when the unique key refuses (the savepoint keeps the transaction usable).
                order_id = new_id()
                try:
                    with savepoint(db):
                        models.INSERT_ORDER.row(
                            db,
                            id=order_id,
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
                    return _new_order(order_id, request, total, now), True
                except peewee.IntegrityError:
                    row = Order.get(
                        (Order.user_id == request.user_id) & (Order.idempotency_key == request.idempotency_key)
                    )
                if row.fingerprint != fingerprint:
                    raise KeyReused("This Idempotency-Key was used for a different order.")
                if row.status == PENDING:
                    claimed = (
                        # A claim counts as activity: recovery leaves the order to this run.
                        Order.update(run_id=request.run_id, run_expires=lease_end, updated_at=now)
                        .where(
                            (Order.id == row.id)
                            & (Order.status == PENDING)
                            & (Order.run_id.is_null() | (Order.run_id == request.run_id) | (Order.run_expires < now))
                        )
                        .execute()
                    )
                    if not claimed:
                        raise InProgress("This order is being created by another request; retry shortly.")
                return to_wire(Order.get_by_id(row.seq)), False
        except peewee.IntegrityError:
            continue
    raise InProgress("This order is being created by another request; retry shortly.")


def get(order_id: str) -> wire.Order:
    row = Order.get_or_none(Order.id == order_id)
    if row is None:
        raise NotFound("No such order.")
    return to_wire(row)


def listing(
    user_id: str | None,
    status: str | None,
    updated_before: datetime.datetime | None,
    updated_after: datetime.datetime | None,
    limit: int,
    offset: int,
) -> wire.OrderPage:
    query = Order.select()
    if user_id is not None:
        query = query.where(Order.user_id == user_id)
    if status is not None:
        query = query.where(Order.status == status)
    if updated_before is not None:
        query = query.where(Order.updated_at < updated_before)
    if updated_after is not None:
        query = query.where(Order.updated_at >= updated_after)
    rows = query.order_by(Order.seq.desc()).limit(limit).offset(offset)
    return wire.OrderPage(items=[to_wire(row) for row in rows], limit=limit, offset=offset)


def set_status(db: peewee.Database, order_id: str, change: wire.StatusChange) -> wire.Order:
    """Step 8: only pending -> paid | cancelled; asking again for the status the order
    already has is answered with the order, unchanged."""
    with write_transaction(db):
        changed = models.FINISH.execute(
            db, change.status, change.reason, change.payment_id, utcnow(), order_id, PENDING
        ).rowcount
        found = models.BY_ID.first(db, order_id)
        if found is None:
            raise NotFound("No such order.")
        row = load(Order, found)
        if changed or row.status == change.status:
            return to_wire(row)
        raise StatusConflict(f"The order is already {row.status}.")


def release(order_id: str, run_id: str) -> None:
    """Drop a run's claim so the next retry need not wait for the lease to end."""
    updated = 0
    # No run holds a claim under an ID the contract refuses (PostgreSQL refuses a NUL).
    if _is_run_id(run_id):
        updated = (
            Order.update(run_id=None, run_expires=None)
            .where((Order.id == order_id) & (Order.run_id == run_id))
            .execute()
        )
    if not updated and Order.get_or_none(Order.id == order_id) is None:
        raise NotFound("No such order.")


def _is_run_id(text: str) -> bool:
    field = attrs.fields(wire.NewOrder).run_id
    try:
        field.validator(None, field, text)
    except ValueError:
        return False
    return True
