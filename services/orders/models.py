"""Orders' tables."""

from __future__ import annotations

import peewee


class Order(peewee.Model):
    seq = peewee.AutoField()
    id = peewee.CharField(max_length=36, unique=True)
    user_id = peewee.CharField(max_length=36)
    # Items are written once and read whole: JSON text keeps them as the client sent them.
    items = peewee.TextField()
    total = peewee.BigIntegerField()
    currency = peewee.CharField(max_length=3)
    status = peewee.CharField(max_length=16)
    reason = peewee.CharField(max_length=200, null=True)
    payment_id = peewee.CharField(max_length=36, null=True)
    idempotency_key = peewee.CharField(max_length=128)
    fingerprint = peewee.CharField(max_length=64)
    # The flow run finishing this order, and until when its claim holds.
    run_id = peewee.CharField(max_length=128, null=True)
    run_expires = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()

    class Meta:
        indexes = (
            (("user_id", "idempotency_key"), True),
            # A customer's orders newest first: read backwards from the newest, no sort.
            (("user_id", "seq"), False),
            # Recovery's scans: the orders in a status last changed within a range.
            (("status", "updated_at"), False),
        )


MODELS = (Order,)
# Indexes earlier versions made, which the ones above replace: dropped at start.
RETIRED_INDEXES = ("order_user_id", "order_status", "order_updated_at")
