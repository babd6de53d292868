"""Nobody reads or creates what is not theirs, and bad input gets a clear JSON error."""

from __future__ import annotations

import pytest

from tests.harness import Gateway


def test_order_in_another_users_name_is_forbidden_and_creates_nothing(gateway: Gateway) -> None:
    alice, bob = gateway.customer(deposit=1_000), gateway.customer(deposit=1_000)
    response = gateway.request(
        "POST",
        "/orders",
        alice.token,
        json={"user_id": bob.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]},
    )
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert gateway.request("GET", "/orders", bob.token).json()["items"] == []
    assert gateway.request("GET", "/orders", alice.token).json()["items"] == []
    assert gateway.request("GET", "/wallet", bob.token).json()["balance"] == 1_000


def test_another_users_order_and_letter_read_as_not_found(gateway: Gateway) -> None:
    alice, bob = gateway.customer(deposit=1_000), gateway.customer()
    result = gateway.order(alice, price=100).json()
    order_id, letter_id = result["order"]["id"], result["letter_id"]
    assert gateway.request("GET", f"/orders/{order_id}", bob.token).status_code == 404
    assert gateway.request("GET", f"/letters/{letter_id}", bob.token).status_code == 404
    assert gateway.request("GET", "/orders", bob.token).json()["items"] == []
    assert gateway.request("GET", "/letters", bob.token).json()["items"] == []
    assert gateway.request("GET", f"/orders/{order_id}", alice.token).status_code == 200


@pytest.mark.parametrize("field", ["status", "id", "total", "owner", "payment_id"])
def test_client_cannot_set_status_id_total_or_owner(gateway: Gateway, field: str) -> None:
    customer = gateway.customer(deposit=1_000)
    body = {"user_id": customer.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]}
    response = gateway.request("POST", "/orders", customer.token, json={**body, field: "paid"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"path": f"$.{field}", "message": "unknown field"}]
    assert gateway.request("GET", "/orders", customer.token).json()["items"] == []


def test_every_route_but_register_and_login_needs_a_token(gateway: Gateway) -> None:
    for method, path in [
        ("GET", "/profile"),
        ("GET", "/wallet"),
        ("GET", "/wallet/operations"),
        ("POST", "/wallet/deposits"),
        ("POST", "/orders"),
        ("GET", "/orders"),
        ("GET", "/letters"),
    ]:
        response = gateway.request(method, path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "unauthorized"


def test_malformed_json_is_400(gateway: Gateway) -> None:
    customer = gateway.customer()
    response = gateway.request(
        "POST", "/orders", customer.token, data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("items", "path"),
    [
        ([{"name": "Tea", "quantity": 1, "price": 12.5}], "$.items[0].price"),
        ([{"name": "Tea", "quantity": 1, "price": "100"}], "$.items[0].price"),
        ([{"name": "Tea", "quantity": 1, "price": -1}], "$.items[0].price"),
        ([{"name": "Tea", "quantity": 0, "price": 1}], "$.items[0].quantity"),
        ([{"name": "Tea", "quantity": True, "price": 1}], "$.items[0].quantity"),
        ([], "$.items"),
    ],
)
def test_invalid_order_fields_are_422_naming_the_field(gateway: Gateway, items: list, path: str) -> None:
    customer = gateway.customer()
    response = gateway.request(
        "POST", "/orders", customer.token, json={"user_id": customer.user_id, "currency": "RUB", "items": items}
    )
    assert response.status_code == 422
    assert [problem["path"] for problem in response.json()["errors"]] == [path]


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", None])
def test_deposit_must_be_a_positive_integer(gateway: Gateway, amount: object) -> None:
    customer = gateway.customer()
    response = gateway.request("POST", "/wallet/deposits", customer.token, json={"amount": amount})
    assert response.status_code == 422
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 0


def test_errors_are_json_even_when_the_client_asks_for_xml(gateway: Gateway) -> None:
    response = gateway.request("GET", "/nowhere", headers={"Accept": "application/xml"})
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


def test_duplicate_login_is_409(gateway: Gateway) -> None:
    first = gateway.register("taken-login")
    assert first.status_code == 201
    again = gateway.register("taken-login", password="another password")
    assert again.status_code == 409 and again.json()["code"] == "login_taken"


def test_wrong_password_is_401(gateway: Gateway) -> None:
    customer = gateway.customer()
    response = gateway.request("POST", "/auth/login", json={"login": customer.login, "password": "wrong password"})
    assert response.status_code == 401 and response.json()["code"] == "invalid_credentials"
