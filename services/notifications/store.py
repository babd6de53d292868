"""Notifications' store: its database and every statement Notifications runs."""

from __future__ import annotations

import datetime

from services.common.db import Insert, Page, Store, load, newest_first, select_statement
from services.notifications.models import MODELS, RETIRED_INDEXES, Letter

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


class LetterStore(Store):
    service = "notifications"
    models = MODELS
    retired_indexes = RETIRED_INDEXES

    def for_order(self, order_id: str, order_status: str) -> Letter | None:
        """The letter sent for the order in that status, if any."""
        found = BY_ORDER.first(self.db, order_id, order_status)
        return None if found is None else load(Letter, found)

    def add_letter(self, row: Letter) -> None:
        """Insert a new letter made in memory; a second one for the same order and
        status raises IntegrityError."""
        INSERT_LETTER.instance(self.db, row)

    def letter(self, letter_id: str) -> Letter | None:
        return self.select(Letter).where(Letter.id == letter_id).get_or_none()

    def claim_delivery(self, letter_id: str, unsent: str, until: datetime.datetime, now: datetime.datetime) -> bool:
        """Hold the delivery of a letter still ``unsent`` until ``until``, unless another
        sender's claim holds now."""
        claimed = (
            self.update(Letter, delivery_claimed_until=until)
            .where(
                (Letter.id == letter_id)
                & (Letter.delivery == unsent)
                & (Letter.delivery_claimed_until.is_null() | (Letter.delivery_claimed_until < now))
            )
            .execute()
        )
        return bool(claimed)

    def delivered(self, letter_id: str, delivery: str) -> None:
        """Record how the delivery went, and let its claim go."""
        self.update(Letter, delivery=delivery, delivery_claimed_until=None).where(Letter.id == letter_id).execute()

    def listing(self, user_id: str | None, order_id: str | None, page: Page) -> tuple[list[Letter], str | None]:
        """The page of letters, newest first, the customer's or the order's when given,
        and the next page's cursor."""
        query = self.select(Letter)
        if user_id is not None:
            query = query.where(Letter.user_id == user_id)
        if order_id is not None:
            query = query.where(Letter.order_id == order_id)
        return newest_first(query, page, user_id)
