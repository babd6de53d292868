"""Billing's tables. The balance is a column guarded by a CHECK, changed only by
conditional updates, so it never goes below zero even under concurrent payments."""

from __future__ import annotations

import peewee

from services.common.db import Insert, Statement


class Wallet(peewee.Model):
    user_id = peewee.CharField(max_length=36, primary_key=True)
    currency = peewee.CharField(max_length=3)
    balance = peewee.BigIntegerField(default=0, constraints=[peewee.Check("balance >= 0")])
    created_at = peewee.DateTimeField()


class Operation(peewee.Model):
    # The sequence orders operations newest first; the UUID is what the wire shows.
    seq = peewee.AutoField()
    id = peewee.CharField(max_length=36, unique=True)
    user_id = peewee.CharField(max_length=36, index=True)
    kind = peewee.CharField(max_length=16)
    amount = peewee.BigIntegerField()
    currency = peewee.CharField(max_length=3)
    balance_after = peewee.BigIntegerField()
    order_id = peewee.CharField(max_length=36, null=True)
    idempotency_key = peewee.CharField(max_length=128, null=True)
    created_at = peewee.DateTimeField()

    class Meta:
        indexes = ((("user_id", "idempotency_key"), True),)


class Payment(peewee.Model):
    id = peewee.CharField(max_length=36, primary_key=True)
    # One decision per order, enforced by the database, not by the code path.
    order_id = peewee.CharField(max_length=36, unique=True)
    user_id = peewee.CharField(max_length=36, index=True)
    amount = peewee.BigIntegerField()
    currency = peewee.CharField(max_length=3)
    outcome = peewee.CharField(max_length=16)
    # A decline's code for programs, and its text for people.
    reason_code = peewee.CharField(max_length=32, null=True)
    reason = peewee.CharField(max_length=200, null=True)
    operation = peewee.ForeignKeyField(Operation, field=Operation.id, null=True, backref="payment")
    created_at = peewee.DateTimeField()


MODELS = (Wallet, Operation, Payment)

# The statements every payment runs (see services.common.db.Statement).
FIND_PAYMENT = Statement('SELECT 1 FROM "payment" WHERE "order_id" = ?')
# The debit is the check: it matches only a wallet in the order's currency that covers
# the amount, so the balance cannot go below zero.
DEBIT = Statement(
    'UPDATE "wallet" SET "balance" = "balance" - ? WHERE "user_id" = ? AND "currency" = ? AND "balance" >= ?'
)
BALANCE = Statement('SELECT "balance" FROM "wallet" WHERE "user_id" = ?')
INSERT_OPERATION = Insert(
    Operation, "id", "user_id", "kind", "amount", "currency", "balance_after", "order_id", "created_at"
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
