"""The same order request sent again, one after another or all at once, makes one
order, one debit and one letter; an ``Idempotency-Key`` belongs to one user and one
order body."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from orchestrator.tools.supervisor import Stack
from tests.harness import Customer, Gateway, Inbox
from tests.invariants import assert_invariants


def _what_exists(gateway: Gateway, customer: Customer) -> tuple[list[dict], list[dict], list[dict]]:
    orders = gateway.request("GET", "/orders?limit=100", customer.token).json()["items"]
    operations = gateway.request("GET", "/wallet/operations?limit=100", customer.token).json()["items"]
    letters = gateway.request("GET", "/letters?limit=100", customer.token).json()["items"]
    return orders, [op for op in operations if op["kind"] == "payment"], letters


def test_same_key_sent_five_times_in_a_row_replays_one_order(gateway: Gateway, stack: Stack, inbox: Inbox) -> None:
    customer = gateway.customer(deposit=5_000)
    key = f"order-{uuid.uuid4()}"

    replies = [gateway.order(customer, price=1_200, key=key) for _ in range(5)]

    assert [r.status_code for r in replies] == [201] * 5
    assert "Idempotent-Replayed" not in replies[0].headers
    assert [r.headers.get("Idempotent-Replayed") for r in replies[1:]] == ["true"] * 4
    first = replies[0].json()
    assert first["order"]["status"] == "paid"
    for reply in replies[1:]:
        again = reply.json()
        assert again["order"]["id"] == first["order"]["id"]
        assert again["payment"]["id"] == first["payment"]["id"]
        assert again["letter_id"] == first["letter_id"]
    orders, debits, letters = _what_exists(gateway, customer)
    assert [o["id"] for o in orders] == [first["order"]["id"]]
    assert [d["amount"] for d in debits] == [1_200]
    assert [letter["id"] for letter in letters] == [first["letter_id"]]
    assert len(inbox.to(customer.email)) == 1
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 3_800
    assert_invariants(stack.settings, delivered=True)


def test_same_key_sent_five_times_at_once_makes_one_order(gateway: Gateway, stack: Stack, inbox: Inbox) -> None:
    customer = gateway.customer(deposit=5_000)
    key = f"order-{uuid.uuid4()}"
    start = threading.Barrier(5)

    def send(_index: int) -> requests.Response:
        client = Gateway(stack.urls["gateway"])
        start.wait(timeout=30)
        return client.order(customer, price=700, key=key)

    with ThreadPoolExecutor(max_workers=5) as pool:
        replies = list(pool.map(send, range(5)))

    finished = [r.json() for r in replies if r.status_code == 201]
    busy = [r.json() for r in replies if r.status_code == 409]
    assert len(finished) + len(busy) == 5, [(r.status_code, r.text[:200]) for r in replies]
    assert finished, "at least the run that took the order finishes it"
    assert all(body["code"] == "in_progress" for body in busy)
    order_ids = {body["order"]["id"] for body in finished}
    assert len(order_ids) == 1

    # A duplicate refused while the first run was busy, sent again, gets that order.
    again = gateway.order(customer, price=700, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert {again.json()["order"]["id"]} == order_ids
    orders, debits, letters = _what_exists(gateway, customer)
    assert [o["id"] for o in orders] == list(order_ids)
    assert [d["amount"] for d in debits] == [700]
    assert [letter["kind"] for letter in letters] == ["happy"]
    assert len(inbox.to(customer.email)) == 1
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 4_300
    assert_invariants(stack.settings, delivered=True)


def test_same_key_with_another_body_is_refused_and_changes_nothing(gateway: Gateway) -> None:
    customer = gateway.customer(deposit=5_000)
    key = f"order-{uuid.uuid4()}"
    first = gateway.order(customer, price=1_000, key=key)
    assert first.status_code == 201

    other = gateway.order(customer, price=2_000, key=key)

    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    orders, debits, letters = _what_exists(gateway, customer)
    assert len(orders) == 1 and len(debits) == 1 and len(letters) == 1
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 4_000


def test_keys_are_scoped_per_user(gateway: Gateway) -> None:
    alice, bob = gateway.customer(deposit=1_000), gateway.customer(deposit=1_000)
    key = f"shared-{uuid.uuid4()}"

    for_alice = gateway.order(alice, price=300, key=key)
    for_bob = gateway.order(bob, price=300, key=key)

    assert for_alice.status_code == for_bob.status_code == 201
    assert "Idempotent-Replayed" not in for_bob.headers
    assert for_alice.json()["order"]["id"] != for_bob.json()["order"]["id"]
    assert for_bob.json()["order"]["user_id"] == bob.user_id
    assert gateway.request("GET", "/wallet", alice.token).json()["balance"] == 700
    assert gateway.request("GET", "/wallet", bob.token).json()["balance"] == 700


def test_a_cancelled_order_stays_cancelled_when_its_key_comes_back_after_a_deposit(gateway: Gateway) -> None:
    customer = gateway.customer(deposit=100)
    key = f"order-{uuid.uuid4()}"
    first = gateway.order(customer, price=500, key=key)
    assert first.json()["order"]["status"] == "cancelled"
    gateway.request("POST", "/wallet/deposits", customer.token, json={"amount": 1_000})

    again = gateway.order(customer, price=500, key=key)

    # The key names that order, whose payment was decided: a retry never re-decides it.
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order"] == first.json()["order"]
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 1_100
    _orders, debits, letters = _what_exists(gateway, customer)
    assert debits == [] and [letter["kind"] for letter in letters] == ["sad"]


def test_an_order_sent_without_a_key_is_answered_with_the_key_that_finishes_it(gateway: Gateway, stack: Stack) -> None:
    customer = gateway.customer(deposit=5_000)
    stack.kill("billing")
    try:
        failed = gateway.order(customer, price=900)
    finally:
        stack.start_one("billing")
    assert failed.status_code == 503 and failed.json()["code"] == "pay_failed"
    key = failed.headers["Idempotency-Key"]

    finished = gateway.order(customer, price=900, key=key)

    assert finished.status_code == 201 and finished.headers["Idempotency-Key"] == key
    assert finished.json()["order"]["id"] == failed.json()["order_id"]
    assert finished.json()["order"]["status"] == "paid"
    orders, debits, _letters = _what_exists(gateway, customer)
    assert len(orders) == 1 and [d["amount"] for d in debits] == [900]
    assert_invariants(stack.settings, delivered=True)
