"""Notifications: letters sent to customers."""

from __future__ import annotations

import attrs

from contracts import types
from contracts.errors import ErrorBody
from contracts.operations import GATEWAY, PAGE_QUERY, Operation, Query


@attrs.frozen
class LetterRequest:
    """Step 9: the order as it stands after step 8."""

    order_id: str = attrs.field(validator=types.identifier)
    user_id: str = attrs.field(validator=types.identifier)
    status: str = attrs.field(validator=types.one_of(*types.FINAL_STATUSES))
    total: int = attrs.field(validator=types.total)
    currency: str = attrs.field(validator=types.currency)
    reason: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.text(1, 200)))


@attrs.frozen
class Letter:
    id: str = attrs.field(validator=types.identifier)
    order_id: str
    user_id: str
    kind: str = attrs.field(validator=types.one_of("happy", "sad"))
    recipient: str
    subject: str
    body: str
    delivery: str = attrs.field(validator=types.one_of("sent", "stored", "failed"))
    created_at: str


@attrs.frozen
class LetterPage:
    """A page of letters, newest first. ``next_before`` is the ``before`` that asks for
    the next page (the ID of this page's last item), null on the last page."""

    items: list[Letter]
    limit: int
    offset: int
    next_before: str | None = attrs.field(default=None, validator=attrs.validators.optional(types.identifier))


OPERATIONS = (
    Operation(
        "POST",
        "/letters",
        "send_letter",
        "Step 10: look up the customer's email and send the happy or the sad letter",
        callers=frozenset({GATEWAY}),
        request=LetterRequest,
        responses={
            200: Letter,
            201: Letter,
            404: ErrorBody,
            422: ErrorBody,
            502: ErrorBody,
            503: ErrorBody,
            504: ErrorBody,
        },
    ),
    Operation(
        "GET",
        "/letters",
        "list_letters",
        "Letters, newest first",
        callers=frozenset({GATEWAY}),
        responses={200: LetterPage, 422: ErrorBody},
        query=(
            Query("user_id", str, "only letters to this user", constraints=types.UUID_QUERY),
            Query("order_id", str, "only letters about this order", constraints=types.UUID_QUERY),
            *PAGE_QUERY,
        ),
    ),
    Operation(
        "GET",
        "/letters/{letter_id}",
        "get_letter",
        "One letter",
        callers=frozenset({GATEWAY}),
        responses={200: Letter, 404: ErrorBody},
    ),
)
