"""Bodies, headers, nesting, field lengths and pages beyond their limits: refused in the one error shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.security.common import Door, Victim, order_body, refused, state

# ---------------------------------------------------------------- size and shape limits


def _chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def _oversized_order(user_id: str, size: int) -> bytes:
    body = json.dumps(order_body(user_id)).encode()
    return body[:-1] + b', "pad": "' + b"x" * size + b'"}'


def test_oversized_body_with_content_length_is_413_json(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        data=_oversized_order(victim.customer.user_id, door.settings.max_body),
        headers={"Content-Type": "application/json"},
    )
    refused(response, 413, "payload_too_large")
    assert state(door.gateway, victim.customer) == before


def test_oversized_chunked_body_without_content_length_is_413_json(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    payload = _oversized_order(victim.customer.user_id, door.settings.max_body)
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        data=(payload[i : i + 4096] for i in range(0, len(payload), 4096)),
        headers={"Content-Type": "application/json"},
    )
    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    refused(response, 413, "payload_too_large")
    assert state(door.gateway, victim.customer) == before


def test_chunked_body_beyond_the_servers_ceiling_is_413_before_the_app_sees_it(door: Door, victim: Victim) -> None:
    """Past twice the limit waitress stops reading and answers by itself (plain text)."""
    before = state(door.gateway, victim.customer)
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        data=_chunks(3 * door.settings.max_body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
    assert state(door.gateway, victim.customer) == before


def test_oversized_headers_are_431(door: Door, victim: Victim) -> None:
    response = door.gateway.request("GET", "/wallet", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert response.status_code == 431


@pytest.mark.parametrize("depth", [17, 30_000])
def test_deeply_nested_json_is_400(door: Door, victim: Victim, depth: int) -> None:
    before = state(door.gateway, victim.customer)
    nested = "[" * depth + "]" * depth
    body = f'{{"user_id": "{victim.customer.user_id}", "currency": "RUB", "items": {nested}}}'
    response = door.gateway.request(
        "POST", "/orders", victim.customer.token, data=body, headers={"Content-Type": "application/json"}
    )
    refused(response, 400, "malformed_json")
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("login", "l" * 65),
        ("password", "p" * 129),
        ("email", "e" * 250 + "@example.com"),
        ("first_name", "f" * 101),
        ("last_name", "l" * 101),
    ],
)
def test_overlong_registration_field_is_422_and_creates_no_user(door: Door, field: str, value: str) -> None:
    login = f"long-{uuid.uuid4().hex[:10]}"
    response = door.gateway.register(**{"login": login, field: value})
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == [f"$.{field}"]
    if field != "login":
        assert door.gateway.register(login).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "anna@example.com\n"), ("login", "anna-newline\n"), ("email", "anna@example.com\r\nBcc: x@example.org")],
    ids=["email_trailing_newline", "login_trailing_newline", "email_header_injection"],
)
def test_line_breaks_in_registration_fields_are_422(door: Door, field: str, value: str) -> None:
    response = door.gateway.register(**{"login": f"crlf-{uuid.uuid4().hex[:10]}", field: value})
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == [f"$.{field}"]


def test_overlong_item_name_and_idempotency_key_are_422(door: Door, victim: Victim) -> None:
    before = state(door.gateway, victim.customer)
    body = order_body(victim.customer.user_id)
    body["items"][0]["name"] = "n" * 201
    response = door.gateway.request("POST", "/orders", victim.customer.token, json=body)
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == ["$.items[0].name"]
    response = door.gateway.request(
        "POST",
        "/orders",
        victim.customer.token,
        json=order_body(victim.customer.user_id),
        headers={"Idempotency-Key": "k" * 129},
    )
    refused(response, 422, "validation_failed")
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize("path", ["/orders", "/letters", "/wallet/operations"])
@pytest.mark.parametrize(
    "query",
    [{"limit": "101"}, {"limit": "1000000"}, {"limit": "99999999999"}, {"limit": "-1"}, {"offset": "-1"}],
    ids=["limit_101", "limit_million", "limit_eleven_digits", "limit_negative", "offset_negative"],
)
def test_page_over_the_cap_is_422(door: Door, victim: Victim, path: str, query: dict[str, str]) -> None:
    refused(door.gateway.request("GET", path, victim.customer.token, params=query), 422, "validation_failed")
