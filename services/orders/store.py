"""Orders' store: its database and every statement Orders runs."""

from __future__ import annotations

import datetime

import attrs

from services.common.db import Insert, Page, Statement, Store, load, newest_first, select_statement
from services.orders.models import MODELS, RETIRED_INDEXES, Order

# The statements every order runs (see services.common.db.Statement).
INSERT_ORDER = Insert(
    Order,
    "id",
    "user_id",
    "items",
    "total",
    "currency",
    "status",
    "idempotency_key",
    "fingerprint",
    "run_id",
    "run_expires",
    "created_at",
    "updated_at",
)
# Only an order in the given status changes; the run's claim ends with it.
FINISH = Statement(
    'UPDATE "order" SET "status" = ?, "reason" = ?, "payment_id" = ?, "run_id" = NULL, "run_expires" = NULL, '
    '"updated_at" = ? WHERE "id" = ? AND "status" = ?'
)
BY_ID = select_statement(Order, '"id" = ?')


@attrs.frozen
class Selection:
    """Which orders a listing shows: each criterion given narrows it."""

    user_id: str | None = None
    status: str | None = None
    updated_before: datetime.datetime | None = None
    updated_after: datetime.datetime | None = None


class OrderStore(Store):
    service = "orders"
    models = MODELS
    retired_indexes = RETIRED_INDEXES

    def add_order(self, row: Order) -> None:
        """Insert a new order made in memory; a key used before raises IntegrityError."""
        INSERT_ORDER.instance(self.db, row)

    def order(self, order_id: str) -> Order | None:
        found = BY_ID.first(self.db, order_id)
        return None if found is None else load(Order, found)

    def by_key(self, user_id: str, idempotency_key: str) -> Order:
        """The order the customer's key made (``Order.DoesNotExist`` if none)."""
        return self.select(Order).where((Order.user_id == user_id) & (Order.idempotency_key == idempotency_key)).get()

    def claim(self, order_id: str, status: str, run_id: str, until: datetime.datetime, now: datetime.datetime) -> bool:
        """Give the order to ``run_id`` until ``until``, if it is still in ``status`` and
        no other run's claim holds. A claim counts as activity (``updated_at``)."""
        claimed = (
            self.update(Order, run_id=run_id, run_expires=until, updated_at=now)
            .where(
                (Order.id == order_id)
                & (Order.status == status)
                & (Order.run_id.is_null() | (Order.run_id == run_id) | (Order.run_expires < now))
            )
            .execute()
        )
        return bool(claimed)

    def release(self, order_id: str, run_id: str) -> bool:
        """End ``run_id``'s claim on the order; False when it held none."""
        released = (
            self.update(Order, run_id=None, run_expires=None)
            .where((Order.id == order_id) & (Order.run_id == run_id))
            .execute()
        )
        return bool(released)

    def finish(
        self,
        order_id: str,
        from_status: str,
        status: str,
        reason: str | None,
        payment_id: str | None,
        now: datetime.datetime,
    ) -> bool:
        """Move the order from ``from_status`` to ``status``; False when it was not in it."""
        changed = FINISH.execute(self.db, status, reason, payment_id, now, order_id, from_status).rowcount
        return bool(changed)

    def listing(self, selection: Selection, page: Page) -> tuple[list[Order], str | None]:
        """The page of the selected orders, newest first, and the next page's cursor."""
        query = self.select(Order)
        if selection.user_id is not None:
            query = query.where(Order.user_id == selection.user_id)
        if selection.status is not None:
            query = query.where(Order.status == selection.status)
        if selection.updated_before is not None:
            query = query.where(Order.updated_at < selection.updated_before)
        if selection.updated_after is not None:
            query = query.where(Order.updated_at >= selection.updated_after)
        return newest_first(query, page, selection.user_id)
