"""Field validators shared by the contract classes.

Each raises :class:`FieldInvalid` so a failure names its field in the ``422`` body.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import attrs

from contracts.converter import FieldInvalid

# Money: integer minor units. The cap keeps totals well inside a signed 64-bit column.
MAX_AMOUNT = 10**12
MAX_QUANTITY = 10_000
MAX_ITEMS = 100
# An order's total is bounded by what its items allow (10^18 < 2^63), so no order the
# item bounds admit is refused for its sum; one no wallet covers is declined.
MAX_TOTAL = MAX_ITEMS * MAX_QUANTITY * MAX_AMOUNT
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
LOGIN_RE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
# Deliberately plain: one @, no whitespace or control characters, a dot in the domain.
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,63}$")
# The canonical text of a UUID, as ``str(uuid.UUID(...))`` writes it.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A query parameter that names a user or an order: the services take the canonical text.
UUID_QUERY = {"format": "uuid", "pattern": UUID_RE.pattern}
# Characters no text field takes: C0 and C1 controls, DEL, the line and paragraph
# separators, the bidirectional embeddings, overrides and isolates (they reorder what a
# reader sees), and the lone surrogates (no UTF-8 encoder can send them back).
UNSAFE_TEXT_CHARS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
UNSAFE_TEXT_RE = re.compile(f"[{UNSAFE_TEXT_CHARS}]")
REPLACEMENT = "\ufffd"
ORDER_STATUSES = ("pending", "paid", "cancelled")
FINAL_STATUSES = ("paid", "cancelled")


def amount(_inst: Any, att: attrs.Attribute, value: int) -> None:
    if not 0 < value <= MAX_AMOUNT:
        raise FieldInvalid(att.name, f"must be a positive integer of minor units, at most {MAX_AMOUNT}")


def total(_inst: Any, att: attrs.Attribute, value: int) -> None:
    if not 0 < value <= MAX_TOTAL:
        raise FieldInvalid(att.name, f"must be a positive integer of minor units, at most {MAX_TOTAL}")


def quantity(_inst: Any, att: attrs.Attribute, value: int) -> None:
    if not 0 < value <= MAX_QUANTITY:
        raise FieldInvalid(att.name, f"must be between 1 and {MAX_QUANTITY}")


def currency(_inst: Any, att: attrs.Attribute, value: str) -> None:
    if not CURRENCY_RE.fullmatch(value):
        raise FieldInvalid(att.name, "must be a three-letter ISO 4217 code such as RUB")


def login(_inst: Any, att: attrs.Attribute, value: str) -> None:
    if not LOGIN_RE.fullmatch(value):
        raise FieldInvalid(att.name, "must be 3-64 characters: letters, digits, '.', '_' or '-'")


def email(_inst: Any, att: attrs.Attribute, value: str) -> None:
    if len(value) > 254 or not EMAIL_RE.fullmatch(value) or UNSAFE_TEXT_RE.search(value):
        raise FieldInvalid(att.name, "must be an email address")


def text(min_len: int, max_len: int) -> Any:
    def check(_inst: Any, att: attrs.Attribute, value: str) -> None:
        if not min_len <= len(value) <= max_len:
            raise FieldInvalid(att.name, f"must be {min_len} to {max_len} characters")
        unsafe = UNSAFE_TEXT_RE.search(value)
        if unsafe:
            raise FieldInvalid(
                att.name,
                "must not contain control characters, line or paragraph separators, or bidirectional "
                f"formatting characters (U+{ord(unsafe.group()):04X} at position {unsafe.start()})",
            )

    return check


def scrub(value: str) -> str:
    """Text stored before the rule above, fit to send: each refused character becomes
    U+FFFD, so the length and every other character stay as they were."""
    return UNSAFE_TEXT_RE.sub(REPLACEMENT, value)


def identifier(_inst: Any, att: attrs.Attribute, value: str) -> None:
    if not UUID_RE.fullmatch(value):
        raise FieldInvalid(att.name, "must be a lowercase UUID")


def one_of(*choices: str) -> Any:
    def check(_inst: Any, att: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise FieldInvalid(att.name, f"must be one of: {', '.join(choices)}")

    return check


def items_count(_inst: Any, att: attrs.Attribute, value: list[Any]) -> None:
    if not 0 < len(value) <= MAX_ITEMS:
        raise FieldInvalid(att.name, f"must hold 1 to {MAX_ITEMS} items")


def new_id() -> str:
    return str(uuid.uuid4())
