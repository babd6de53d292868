"""Notifications' tables."""

from __future__ import annotations

import peewee


class Letter(peewee.Model):
    seq = peewee.AutoField()
    id = peewee.CharField(max_length=36, unique=True)
    order_id = peewee.CharField(max_length=36)
    order_status = peewee.CharField(max_length=16)
    user_id = peewee.CharField(max_length=36)
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
        indexes = (
            (("order_id", "order_status"), True),
            # A customer's letters newest first, read backwards: no sort.
            (("user_id", "seq"), False),
        )


MODELS = (Letter,)
# Indexes earlier versions made, which the ones above replace: dropped at start.
RETIRED_INDEXES = ("letter_user_id",)
