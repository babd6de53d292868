"""Orders' tables."""

from __future__ import annotations

import peewee

from services.common.db import Insert, Statement, select_statement


class Order(peewee.Model):
    seq = peewee.AutoField()
    id = peewee.CharField(max_length=36, unique=True)
    user_id = peewee.CharField(max_length=36, index=True)
    # Items are written once and read whole: JSON text keeps them as the client sent them.
    items = peewee.TextField()
    total = peewee.BigIntegerField()
    currency = peewee.CharField(max_length=3)
    status = peewee.CharField(max_length=16, index=True)
    reason = peewee.CharField(max_length=200, null=True)
    payment_id = peewee.CharField(max_length=36, null=True)
    idempotency_key = peewee.CharField(max_length=128)
    fingerprint = peewee.CharField(max_length=64)
    # The flow run finishing this order, and until when its claim holds.
    run_id = peewee.CharField(max_length=128, null=True)
    run_expires = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField(index=True)

    class Meta:
        indexes = ((("user_id", "idempotency_key"), True),)


MODELS = (Order,)

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
# Only a pending order changes status; the run's claim ends with it.
FINISH = Statement(
    'UPDATE "order" SET "status" = ?, "reason" = ?, "payment_id" = ?, "run_id" = NULL, "run_expires" = NULL, '
    '"updated_at" = ? WHERE "id" = ? AND "status" = ?'
)
BY_ID = select_statement(Order, '"id" = ?')
