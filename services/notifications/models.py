"""Notifications' tables."""

from __future__ import annotations

import peewee

from services.common.db import Insert, select_statement


class Letter(peewee.Model):
    seq = peewee.AutoField()
    id = peewee.CharField(max_length=36, unique=True)
    order_id = peewee.CharField(max_length=36)
    order_status = peewee.CharField(max_length=16)
    user_id = peewee.CharField(max_length=36, index=True)
    kind = peewee.CharField(max_length=8)
    recipient = peewee.CharField(max_length=254)
    subject = peewee.CharField(max_length=200)
    body = peewee.TextField()
    delivery = peewee.CharField(max_length=8)
    # One sender at a time: a delivery is claimed until this moment before it is tried.
    delivery_claimed_until = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField()

    class Meta:
        # One letter per order and status, whatever the number of retries.
        indexes = ((("order_id", "order_status"), True),)


MODELS = (Letter,)

# The statements every order's letter runs (see services.common.db.Statement).
BY_ORDER = select_statement(Letter, '"order_id" = ? AND "order_status" = ?')
INSERT_LETTER = Insert(
    Letter,
    "id",
    "order_id",
    "order_status",
    "user_id",
    "kind",
    "recipient",
    "subject",
    "body",
    "delivery",
    "created_at",
)
