"""Rows written straight into a service's database, past its API: what an older version
that took any text, or damage, may have left there. Tests plant them to prove the
services and recovery cope with data the contract would refuse today."""

from __future__ import annotations

import datetime
import uuid

from services.common.clock import utcnow
from services.common.config import Settings
from services.common.db import open_database
from services.orders.models import MODELS as ORDER_MODELS
from services.orders.models import Order


def plant_order(settings: Settings, user_id: str, items: str, total: int = 100, idle: float = 3600) -> str:
    """A pending order with ``items`` as its stored JSON text, last changed ``idle``
    seconds ago, unclaimed; returns its ID. Orders' tables must exist (the service has
    started); its models are bound to the database only for the write."""
    order_id = str(uuid.uuid4())
    then = utcnow() - datetime.timedelta(seconds=idle)
    db = open_database(settings.database("orders"), max_connections=1)
    try:
        with db.bind_ctx(ORDER_MODELS, bind_refs=False, bind_backrefs=False), db.connection_context():
            Order.create(
                id=order_id,
                user_id=user_id,
                items=items,
                total=total,
                currency="RUB",
                status="pending",
                idempotency_key=f"planted-{order_id}",
                fingerprint="0" * 64,
                created_at=then,
                updated_at=then,
            )
    finally:
        db.close_all()
    return order_id
