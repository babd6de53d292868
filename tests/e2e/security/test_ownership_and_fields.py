"""Another customer's data, and fields a client must not set: refused, nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.security.common import Door, Victim, order_body, refused, state
from tests.harness import Customer

# ---------------------------------------------------------------- ownership


def test_order_in_another_users_name_is_403_and_spends_nothing(door: Door, victim: Victim, intruder: Customer) -> None:
    before = state(door.gateway, victim.customer)
    mine = state(door.gateway, intruder)
    response = door.gateway.request("POST", "/orders", intruder.token, json=order_body(victim.customer.user_id))
    refused(response, 403, "forbidden")
    assert state(door.gateway, victim.customer) == before
    assert state(door.gateway, intruder) == mine


def test_another_users_order_and_letter_read_as_not_found(door: Door, victim: Victim, intruder: Customer) -> None:
    refused(door.gateway.request("GET", f"/orders/{victim.order_id}", intruder.token), 404, "not_found")
    refused(door.gateway.request("GET", f"/letters/{victim.letter_id}", intruder.token), 404, "not_found")
    assert door.gateway.request("GET", f"/orders/{victim.order_id}", victim.customer.token).status_code == 200


@pytest.mark.parametrize("path", ["/wallet", "/wallet/operations", "/orders", "/letters", "/profile"])
def test_naming_another_user_in_the_query_reads_only_ones_own_data(
    door: Door, victim: Victim, intruder: Customer, path: str
) -> None:
    own = door.gateway.request("GET", path, intruder.token).json()
    for name in ("user_id", "owner", "sub"):
        response = door.gateway.request("GET", path, intruder.token, params={name: victim.customer.user_id})
        assert response.status_code == 200
        assert response.json() == own
        assert victim.customer.user_id not in response.text


# ---------------------------------------------------------------- fields a client must not set


@pytest.mark.parametrize(
    "field",
    ["id", "user_id", "role", "is_admin", "complete", "password_hash", "balance", "created_at"],
)
def test_injected_field_on_register_is_422_and_creates_no_user(door: Door, field: str) -> None:
    login = f"inject-{uuid.uuid4().hex[:10]}"
    response = door.gateway.register(login, **{field: "admin"})
    refused(response, 422, "validation_failed")
    assert response.json()["errors"] == [{"path": f"$.{field}", "message": "unknown field"}]
    # The login is still free: registering it with another password succeeds.
    assert door.gateway.register(login, password="a different password").status_code == 201


@pytest.mark.parametrize("field", ["balance", "user_id", "currency", "kind", "idempotency_key", "order_id"])
def test_injected_field_on_deposit_is_422_and_moves_no_money(door: Door, victim: Victim, field: str) -> None:
    before = state(door.gateway, victim.customer)
    body = {"amount": 100, field: victim.customer.user_id if field == "user_id" else 10**9}
    response = door.gateway.request("POST", "/wallet/deposits", victim.customer.token, json=body)
    refused(response, 422, "validation_failed")
    assert response.json()["errors"] == [{"path": f"$.{field}", "message": "unknown field"}]
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"status": "paid"}, "$.status"),
        ({"id": str(uuid.uuid4())}, "$.id"),
        ({"total": 1}, "$.total"),
        ({"owner": "admin"}, "$.owner"),
        ({"payment_id": str(uuid.uuid4())}, "$.payment_id"),
        ({"amount": 1}, "$.amount"),
        ({"balance": 10**9}, "$.balance"),
        ({"role": "admin"}, "$.role"),
        ({"items": [{"name": "Tea", "quantity": 1, "price": 100, "total": 1}]}, "$.items[0].total"),
        ({"user_id": {"$ne": None}}, "$.user_id"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_injected_field_on_order_is_422_and_creates_no_order(
    door: Door, victim: Victim, change: dict[str, Any], path: str
) -> None:
    before = state(door.gateway, victim.customer)
    body = {**order_body(victim.customer.user_id), **change}
    response = door.gateway.request("POST", "/orders", victim.customer.token, json=body)
    refused(response, 422, "validation_failed")
    assert [problem["path"] for problem in response.json()["errors"]] == [path]
    assert state(door.gateway, victim.customer) == before
