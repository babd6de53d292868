"""Billing's tables. The balance is a column guarded by a CHECK, changed only by the
store's conditional updates, so it never goes below zero even under concurrent payments."""

from __future__ import annotations

import peewee


class Wallet(peewee.Model):
    user_id = peewee.CharField(max_length=36, primary_key=True)
    currency = peewee.CharField(max_length=3)
    balance = peewee.BigIntegerField(default=0, constraints=[peewee.Check("balance >= 0")])
    created_at = peewee.DateTimeField()


class Operation(peewee.Model):
    # The sequence orders operations newest first; the UUID is what the wire shows.
    seq = peewee.AutoField()
    id = peewee.CharField(max_length=36, unique=True)
    user_id = peewee.CharField(max_length=36)
    kind = peewee.CharField(max_length=16)
    amount = peewee.BigIntegerField()
    currency = peewee.CharField(max_length=3)
    balance_after = peewee.BigIntegerField()
    order_id = peewee.CharField(max_length=36, null=True)
    idempotency_key = peewee.CharField(max_length=128, null=True)
    created_at = peewee.DateTimeField()

    class Meta:
        indexes = (
            (("user_id", "idempotency_key"), True),
            # A customer's operations newest first, read backwards: no sort.
            (("user_id", "seq"), False),
        )


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
# Indexes earlier versions made, which the ones above replace: dropped at start.
RETIRED_INDEXES = ("operation_user_id",)
