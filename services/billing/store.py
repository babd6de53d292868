"""Billing's store: its database and every statement Billing runs.

Money moves one way: a conditional update of the balance (:data:`CREDIT` for a deposit,
:data:`DEBIT` for a payment), then the operation that records it with the balance after.
The debit matches only a wallet in the payment's currency that covers the amount, so it
is the balance check; the table's ``CHECK (balance >= 0)`` stands behind it.
"""

from __future__ import annotations

import datetime

from contracts import vocabulary as words
from contracts.types import new_id
from services.billing.models import MODELS, RETIRED_INDEXES, Operation, Payment, Wallet
from services.common.db import Insert, Page, Statement, Store, columns, load, newest_first

CREDIT = Statement('UPDATE "wallet" SET "balance" = "balance" + ? WHERE "user_id" = ? AND "currency" = ?')
DEBIT = Statement(
    'UPDATE "wallet" SET "balance" = "balance" - ? WHERE "user_id" = ? AND "currency" = ? AND "balance" >= ?'
)
BALANCE = Statement('SELECT "balance" FROM "wallet" WHERE "user_id" = ?')
INSERT_OPERATION = Insert(
    Operation,
    "id",
    "user_id",
    "kind",
    "amount",
    "currency",
    "balance_after",
    "order_id",
    "idempotency_key",
    "created_at",
)
INSERT_PAYMENT = Insert(
    Payment,
    "id",
    "order_id",
    "user_id",
    "amount",
    "currency",
    "outcome",
    "reason_code",
    "reason",
    "operation",
    "created_at",
)
# An order's decision and the operation it made, if any, in one read.
DECISION = Statement(
    f'SELECT {columns(Payment)}, {columns(Operation)} FROM "payment" '
    'LEFT JOIN "operation" ON "operation"."id" = "payment"."operation_id" WHERE "payment"."order_id" = ?'
)
_PAYMENT_COLUMNS = len(Payment._meta.sorted_fields)


class BillingStore(Store):
    service = "billing"
    models = MODELS
    retired_indexes = RETIRED_INDEXES

    def wallet(self, user_id: str) -> Wallet | None:
        return self.select(Wallet).where(Wallet.user_id == user_id).get_or_none()

    def credit(
        self, user_id: str, amount: int, currency: str, key: str | None, now: datetime.datetime
    ) -> Operation | None:
        """A deposit of ``amount`` into the customer's wallet in ``currency``, recorded
        under the idempotency ``key``; None when there is no such wallet."""
        moved = CREDIT.execute(self.db, amount, user_id, currency).rowcount
        return self._recorded(moved, words.DEPOSIT, user_id, amount, currency, None, key, now)

    def debit(
        self, user_id: str, amount: int, currency: str, order_id: str, now: datetime.datetime
    ) -> Operation | None:
        """The payment of ``amount`` for the order; None, and nothing moved, when the
        customer has no wallet in ``currency`` that covers it."""
        moved = DEBIT.execute(self.db, amount, user_id, currency, amount).rowcount
        return self._recorded(moved, words.PAYMENT, user_id, amount, currency, order_id, None, now)

    def _recorded(
        self,
        moved: int,
        kind: str,
        user_id: str,
        amount: int,
        currency: str,
        order_id: str | None,
        key: str | None,
        now: datetime.datetime,
    ) -> Operation | None:
        """The operation recording a balance change, if the update made one."""
        if not moved:
            return None
        row = Operation(
            id=new_id(),
            user_id=user_id,
            kind=kind,
            amount=amount,
            currency=currency,
            balance_after=BALANCE.scalar(self.db, user_id),
            order_id=order_id,
            idempotency_key=key,
            created_at=now,
        )
        INSERT_OPERATION.instance(self.db, row)
        return row

    def keyed_operation(self, user_id: str, key: str) -> Operation | None:
        """The customer's operation made under the idempotency ``key``, if any."""
        return (
            self.select(Operation)
            .where((Operation.user_id == user_id) & (Operation.idempotency_key == key))
            .get_or_none()
        )

    def operations(self, user_id: str, page: Page) -> tuple[list[Operation], str | None]:
        """The page of the customer's operations, newest first, and the next page's cursor."""
        return newest_first(self.select(Operation).where(Operation.user_id == user_id), page, user_id)

    def decision(self, order_id: str) -> tuple[Payment, Operation | None] | None:
        """The order's payment decision and, for a debit, its operation."""
        found = DECISION.first(self.db, order_id)
        if found is None:
            return None
        payment = load(Payment, found[:_PAYMENT_COLUMNS])
        operation = load(Operation, found[_PAYMENT_COLUMNS:]) if payment.operation_id is not None else None
        return payment, operation

    def decide(self, row: Payment) -> None:
        """Record the order's decision; a second one for the order raises IntegrityError."""
        INSERT_PAYMENT.instance(self.db, row)
