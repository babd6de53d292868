"""Money text, request IDs."""

from __future__ import annotations

from services.common.logs import accept_request_id
from services.notifications.logic import money


def test_money_is_formatted_from_minor_units_without_floats() -> None:
    assert money(5, "RUB") == "0.05 RUB"
    assert money(123_456_789_012, "USD") == "1234567890.12 USD"


def test_request_id_is_kept_when_safe_and_replaced_when_not() -> None:
    assert accept_request_id("abc-123") == "abc-123"
    assert accept_request_id("bad id\r\nX: y") != "bad id\r\nX: y"
    assert len(accept_request_id(None)) == 32
    assert len(accept_request_id("x" * 65)) == 32
