"""The user's scenario, end to end, against six real waitress processes."""

from __future__ import annotations

import uuid

from orchestrator.flow import FLOW
from orchestrator.tools.supervisor import Stack
from tests.e2e.conftest import log_text
from tests.harness import Gateway, Inbox


def test_registration_creates_user_profile_and_empty_wallet(gateway: Gateway) -> None:
    customer = gateway.customer()
    profile = gateway.request("GET", "/profile", customer.token)
    assert profile.status_code == 200
    assert profile.json()["email"] == customer.email
    wallet = gateway.request("GET", "/wallet", customer.token).json()
    assert wallet == {**wallet, "balance": 0, "currency": "RUB", "user_id": customer.user_id}


def test_registration_never_returns_the_password_or_its_hash(gateway: Gateway) -> None:
    response = gateway.register()
    assert response.status_code == 201
    text = response.text.lower()
    assert "password" not in text and "argon2" not in text


def test_login_gives_a_bearer_token(gateway: Gateway) -> None:
    login = f"user-{uuid.uuid4().hex[:8]}"
    gateway.register(login)
    response = gateway.request("POST", "/auth/login", json={"login": login, "password": "correct horse battery"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"].count(".") == 2


def test_deposit_then_balance_and_operations(gateway: Gateway) -> None:
    customer = gateway.customer()
    deposit = gateway.request("POST", "/wallet/deposits", customer.token, json={"amount": 12_345})
    assert deposit.status_code == 201
    assert deposit.json()["wallet"]["balance"] == 12_345
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 12_345
    operations = gateway.request("GET", "/wallet/operations", customer.token).json()["items"]
    assert [(op["kind"], op["amount"], op["balance_after"]) for op in operations] == [("deposit", 12_345, 12_345)]


def test_paid_order_debits_the_wallet_and_sends_the_happy_letter(gateway: Gateway, inbox: Inbox) -> None:
    customer = gateway.customer(deposit=10_000)
    response = gateway.order(customer, price=2_500, quantity=2)
    assert response.status_code == 201, response.text
    result = response.json()
    order = result["order"]
    assert order["status"] == "paid" and order["total"] == 5_000 and order["user_id"] == customer.user_id
    assert result["payment"]["amount"] == 5_000 and result["payment"]["order_id"] == order["id"]
    assert result["payment"]["balance_after"] == 5_000
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 5_000

    letter = gateway.request("GET", f"/letters/{result['letter_id']}", customer.token).json()
    assert letter["kind"] == "happy" and letter["recipient"] == customer.email and letter["order_id"] == order["id"]
    assert letter["delivery"] == "sent"
    [mail] = inbox.to(customer.email)
    assert mail["To"] == customer.email
    assert mail["Subject"] == f"Your order {order['id']} is paid"
    assert "50.00 RUB" in mail.get_payload()


def test_unaffordable_order_is_cancelled_with_a_sad_letter_and_untouched_wallet(gateway: Gateway, inbox: Inbox) -> None:
    customer = gateway.customer(deposit=1_000)
    response = gateway.order(customer, price=1_001)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["order"]["status"] == "cancelled"
    assert result["order"]["reason"] == "Insufficient funds"
    assert result["payment"] is None
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 1_000
    operations = gateway.request("GET", "/wallet/operations", customer.token).json()["items"]
    assert [op["kind"] for op in operations] == ["deposit"]
    [mail] = inbox.to(customer.email)
    assert mail["Subject"] == f"Your order {result['order']['id']} was cancelled"
    assert "Insufficient funds" in mail.get_payload()
    letters = gateway.request("GET", "/letters", customer.token).json()["items"]
    assert [(letter["kind"], letter["id"]) for letter in letters] == [("sad", result["letter_id"])]


def test_orders_and_letters_list_newest_first(gateway: Gateway) -> None:
    customer = gateway.customer(deposit=500)
    first = gateway.order(customer, price=400).json()["order"]
    second = gateway.order(customer, price=400).json()["order"]
    assert (first["status"], second["status"]) == ("paid", "cancelled")
    listed = gateway.request("GET", "/orders", customer.token).json()["items"]
    assert [order["id"] for order in listed] == [second["id"], first["id"]]
    letters = gateway.request("GET", "/letters", customer.token).json()["items"]
    assert [letter["kind"] for letter in letters] == ["sad", "happy"]
    one = gateway.request("GET", f"/orders/{first['id']}", customer.token)
    assert one.status_code == 200 and one.json() == first | {"updated_at": one.json()["updated_at"]}


def test_request_id_is_echoed_and_follows_the_order_through_every_service(gateway: Gateway, stack: Stack) -> None:
    customer = gateway.customer(deposit=1_000)
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    response = gateway.request(
        "POST",
        "/orders",
        customer.token,
        headers={"X-Request-ID": request_id},
        json={"user_id": customer.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]},
    )
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == request_id
    for service in ("gateway", "orders", "billing", "notifications", "profiles"):
        assert f"rid={request_id}" in log_text(stack, service), service
    # The gateway logs every step's time on one line with the request ID.
    steps_line = next(
        line for line in log_text(stack, "gateway").splitlines() if f"rid={request_id}" in line and "steps (ms)" in line
    )
    for number in range(2, 12):
        assert f" {number} {FLOW[number - 1].name} " in steps_line


def test_gateway_makes_a_request_id_when_the_client_sends_none(gateway: Gateway) -> None:
    response = gateway.request("GET", "/health")
    assert len(response.headers["X-Request-ID"]) == 32


def test_order_response_carries_server_timing_for_each_step(gateway: Gateway) -> None:
    customer = gateway.customer(deposit=1_000)
    response = gateway.order(customer, price=100)
    names = [entry.strip().split(";")[0] for entry in response.headers["Server-Timing"].split(",")]
    assert names == ["s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "app"]
