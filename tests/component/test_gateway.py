"""The gateway's app in-process, its five clients replaced by fakes: the public answers
of the order flow (every status the README's failure table gives), the headers, the
release of a broken run's order, ownership, and the flow's metrics."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import falcon.testing
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.app import create_app
from tests.fakes import FakeAuth, FakeBilling, FakeNotifications, FakeOrders, FakeProfiles


@attrs.define
class Door:
    client: falcon.testing.TestClient
    auth: FakeAuth
    orders: FakeOrders
    billing: FakeBilling
    notifications: FakeNotifications
    user_id: str

    def token(self, user_id: str | None = None) -> str:
        return self.auth.token(user_id or self.user_id)

    def order(self, price: int = 1_000, key: str | None = None, **body: Any) -> falcon.testing.Result:
        headers = {"Authorization": f"Bearer {self.token()}"} | ({"Idempotency-Key": key} if key else {})
        json = {"user_id": self.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": price}]}
        return self.client.simulate_post("/orders", json=json | body, headers=headers)


@pytest.fixture
def door(settings) -> Door:
    auth, orders, billing, notifications = (
        FakeAuth(Ed25519PrivateKey.generate()),
        FakeOrders(),
        FakeBilling(),
        FakeNotifications(),
    )
    clients = {
        "auth": auth,
        "profiles": FakeProfiles(),
        "orders": orders,
        "billing": billing,
        "notifications": notifications,
    }
    user_id = str(uuid.uuid4())
    billing.give_wallet(user_id, "RUB", balance=5_000)
    notifications.emails[user_id] = "anna@example.com"
    app = create_app(settings, clients=clients)
    return Door(falcon.testing.TestClient(app), auth, orders, billing, notifications, user_id)


def test_a_paid_order_is_201_with_its_operation_letter_and_step_timings(door: Door) -> None:
    reply = door.order(key="order-1")

    assert reply.status_code == 201, reply.text
    body = reply.json
    assert body["order"]["status"] == "paid" and body["payment"]["amount"] == 1_000
    assert body["letter_id"] is not None and body["letter_pending"] is False
    assert reply.headers["Idempotency-Key"] == "order-1"
    assert reply.headers["Location"] == f"/orders/{body['order']['id']}"
    steps = [entry.split(";")[0] for entry in reply.headers["Server-Timing"].split(", ")]
    assert steps[:10] == [f"s{number}" for number in range(2, 12)] and steps[-1] == "app"


def test_a_declined_order_is_201_cancelled_with_the_reason(door: Door) -> None:
    reply = door.order(price=9_000)

    assert reply.status_code == 201
    assert (reply.json["order"]["status"], reply.json["order"]["reason"]) == ("cancelled", "Insufficient funds")
    assert reply.json["payment"] is None


@pytest.mark.parametrize(
    ("fake", "operation", "reason", "status", "code", "step"),
    [
        ("orders", "create_order", "unavailable", 503, "create_order_failed", 3),
        ("orders", "create_order", "server_error", 502, "create_order_failed", 3),
        ("billing", "pay", "unavailable", 503, "pay_failed", 5),
        ("billing", "pay", "timeout", 504, "pay_failed", 5),
        ("billing", "pay", "bad_response", 502, "pay_failed", 5),
        ("orders", "set_status", "server_error", 502, "update_status_failed", 7),
    ],
)
def test_a_failed_step_is_a_5xx_naming_it_and_the_same_key_finishes_the_order(
    door: Door, fake: str, operation: str, reason: str, status: int, code: str, step: int
) -> None:
    getattr(door, fake).fail(operation, reason)

    failed = door.order(key="retry-me")

    assert failed.status_code == status
    body = failed.json
    assert (body["code"], body["step"], body["reason"]) == (code, step, reason)
    assert failed.headers["Idempotency-Key"] == "retry-me"
    assert ("order_id" in body) == (step > 3)
    # The broken run released its claim on the order, so the retry need not wait.
    assert door.orders.claims == {}
    again = door.order(key="retry-me")
    assert again.status_code == 201 and again.json["order"]["status"] == "paid"
    assert door.billing.wallets[door.user_id].balance == 4_000


@pytest.mark.parametrize(("status", "code"), [(409, "in_progress"), (422, "idempotency_key_reused")])
def test_orders_refusing_the_create_request_passes_through(door: Door, status: int, code: str) -> None:
    door.orders.fail("create_order", status=status, code=code)

    refused = door.order()

    assert refused.status_code == status and refused.json["code"] == code


def test_a_refused_status_change_is_the_step_failing(door: Door) -> None:
    door.orders.fail("set_status", status=409, code="status_conflict")

    failed = door.order()

    assert failed.status_code == 502
    assert (failed.json["code"], failed.json["reason"]) == ("update_status_failed", "refused")


def test_a_failed_letter_still_answers_201_with_the_letter_pending(door: Door) -> None:
    door.notifications.fail("send_letter", "unavailable")

    reply = door.order()

    assert reply.status_code == 201
    assert (reply.json["letter_pending"], reply.json["letter_id"]) == (True, None)


def test_an_order_in_another_name_is_403_and_calls_nothing(door: Door) -> None:
    refused = door.order(user_id=str(uuid.uuid4()))

    assert refused.status_code == 403 and refused.json["code"] == "forbidden"
    assert door.orders.calls == []


def test_the_flow_counts_orders_by_outcome(door: Door) -> None:
    door.order()
    door.order(price=9_000)
    door.billing.fail("pay", "unavailable")
    door.order()

    metrics = door.client.simulate_get("/metrics").text

    for status in ("paid", "cancelled", "failed"):
        assert f'syncorders_orders_total{{status="{status}"}} 1.0' in metrics
    assert 'syncorders_flow_step_outcomes_total{name="pay",outcome="unavailable",step="5"} 1.0' in metrics


def test_a_customer_lists_and_reads_only_their_own_orders(door: Door) -> None:
    mine = door.order().json["order"]["id"]
    headers = {"Authorization": f"Bearer {door.token()}"}

    listed = door.client.simulate_get("/orders", headers=headers)
    read = door.client.simulate_get(f"/orders/{mine}", headers=headers)
    stranger = door.client.simulate_get(
        f"/orders/{mine}", headers={"Authorization": f"Bearer {door.token(str(uuid.uuid4()))}"}
    )

    assert [order["id"] for order in listed.json["items"]] == [mine]
    assert read.status_code == 200 and stranger.status_code == 404
