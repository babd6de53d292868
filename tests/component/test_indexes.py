"""A database an earlier version made gains the indexes of this one when its service
starts, and loses those they replace."""

from __future__ import annotations

import pytest

from services.billing.store import BillingStore
from services.common.config import Settings
from services.common.db import Store, open_database
from services.notifications.store import LetterStore
from services.orders.store import OrderStore

# Each retired index, as the earlier version declared it.
EARLIER = {
    "order_user_id": ("order", "user_id"),
    "order_status": ("order", "status"),
    "order_updated_at": ("order", "updated_at"),
    "operation_user_id": ("operation", "user_id"),
    "letter_user_id": ("letter", "user_id"),
}


@pytest.mark.parametrize("kind", [OrderStore, BillingStore, LetterStore], ids=lambda kind: kind.service)
def test_an_earlier_database_gains_the_new_indexes_and_drops_the_ones_they_replace(
    kind: type[Store], settings: Settings
) -> None:
    url = settings.database(kind.service)
    made = kind.open(settings)
    with made.connection():
        new = {index.name for model in kind.models for index in made.db.get_indexes(model._meta.table_name)}
    made.close()
    earlier = open_database(url, max_connections=1)
    with earlier.connection_context():
        for model in kind.models:
            table = model._meta.table_name
            for index in earlier.get_indexes(table):
                if index.name in new and not index.name.startswith("sqlite_autoindex") and not index.unique:
                    earlier.execute_sql(f'DROP INDEX "{index.name}"')
        for name, (table, column) in EARLIER.items():
            if name in kind.retired_indexes:
                earlier.execute_sql(f'CREATE INDEX "{name}" ON "{table}" ("{column}")')
        before = {index.name for model in kind.models for index in earlier.get_indexes(model._meta.table_name)}
    earlier.close_all()
    assert before != new and set(kind.retired_indexes) <= before

    store = kind.open(settings)
    try:
        with store.connection():
            now = {index.name for model in kind.models for index in store.db.get_indexes(model._meta.table_name)}
    finally:
        store.close()

    assert kind.retired_indexes
    assert now == new
    assert not now & set(kind.retired_indexes)
