"""What Notifications does, apart from HTTP: compose, store and deliver letters."""

from __future__ import annotations

import datetime

import peewee

from contracts import notifications as wire
from contracts import profiles
from contracts.types import new_id, scrub
from services.common.clients import ProfilesClient
from services.common.db import Page, iso, utcnow
from services.common.errors import NotFound
from services.notifications.mailer import Mailer
from services.notifications.models import Letter
from services.notifications.store import LetterStore

SENT, STORED, FAILED = "sent", "stored", "failed"


class NoProfile(Exception):
    """Profiles has no contact data for the order's customer."""


def to_wire(row: Letter) -> wire.Letter:
    return wire.Letter(
        id=row.id,
        order_id=row.order_id,
        user_id=row.user_id,
        kind=row.kind,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        delivery=row.delivery,
        created_at=iso(row.created_at),
    )


def money(amount: int, currency: str) -> str:
    """Minor units as text, without ever passing through a float."""
    whole, cents = divmod(amount, 100)
    return f"{whole}.{cents:02d} {currency}"


def compose(request: wire.LetterRequest, profile: profiles.Profile) -> tuple[str, str, str]:
    """The happy letter for a paid order, the sad one for a cancelled order. A name
    stored before names were checked is written with U+FFFD for what is now refused."""
    return letter_text(
        request.status, request.order_id, request.total, request.currency, request.reason, scrub(profile.first_name)
    )


def letter_text(
    status: str, order_id: str, total_amount: int, currency: str, reason: str | None, name: str
) -> tuple[str, str, str]:
    """The letter's kind, subject and body for an order in ``status``, to ``name``."""
    total = money(total_amount, currency)
    if status == "paid":
        return (
            "happy",
            f"Your order {order_id} is paid",
            f"Hello {name},\n\nyour order {order_id} for {total} is paid. Thank you!\n",
        )
    reason = reason or "the payment did not go through"
    return (
        "sad",
        f"Your order {order_id} was cancelled",
        f"Hello {name},\n\nwe are sorry: your order {order_id} for {total} "
        f"was cancelled ({reason}). No money was taken.\n",
    )


def send_letter(
    store: LetterStore,
    request: wire.LetterRequest,
    profiles_client: ProfilesClient,
    mailer: Mailer | None,
    delivery_claim: float,
) -> tuple[wire.Letter, bool]:
    """Step 10. A letter already sent for this order and status is returned as it is
    (and delivered again only if its delivery failed)."""
    row, created = store.for_order(request.order_id, request.status), False
    if row is None:
        reply = profiles_client.get_profile(request.user_id)
        if reply.error is not None:
            raise NoProfile("Profiles has no contact data for this customer.")
        profile: profiles.Profile = reply.data
        kind, subject, body = compose(request, profile)
        new = Letter(
            id=new_id(),
            order_id=request.order_id,
            order_status=request.status,
            user_id=request.user_id,
            kind=kind,
            recipient=profile.email,
            subject=subject,
            body=body,
            delivery=FAILED if mailer else STORED,
            created_at=utcnow(),
        )
        try:
            with store.transaction():
                store.add_letter(new)
            row, created = new, True
        except peewee.IntegrityError:
            row = store.for_order(request.order_id, request.status)
            assert row is not None, "the insert clashed with this letter"
    # Stored first, delivered second: a lost delivery is retried, never the letter lost.
    if mailer is not None and row.delivery == FAILED and _claim_delivery(store, row, delivery_claim):
        delivered = mailer.send(row.recipient, row.subject, row.body)
        row.delivery = SENT if delivered else FAILED
        store.delivered(row.id, row.delivery)
    return to_wire(row), created


def _claim_delivery(store: LetterStore, row: Letter, seconds: float) -> bool:
    """Only one of several parallel requests for the same letter may mail it; a claim
    left by a sender that died lapses after ``seconds``."""
    now = utcnow()
    return store.claim_delivery(row.id, FAILED, now + datetime.timedelta(seconds=seconds), now)


def listing(store: LetterStore, user_id: str | None, order_id: str | None, page: Page) -> wire.LetterPage:
    rows, following = store.listing(user_id, order_id, page)
    items = [to_wire(row) for row in rows]
    return wire.LetterPage(items=items, limit=page.limit, offset=page.offset, next_before=following)


def get(store: LetterStore, letter_id: str) -> wire.Letter:
    row = store.letter(letter_id)
    if row is None:
        raise NotFound("No such letter.")
    return to_wire(row)
