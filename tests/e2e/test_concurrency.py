"""Many requests at once: a wallet's balance is a hard limit, lock contention never
turns into an error or a lost write, and every order gets exactly its letter.

The stack here makes no internal retries, so contention must be absorbed where it
happens (the database's lock wait), not hidden by a second attempt.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs
import pytest
import requests

from contracts import orders as wire_orders
from contracts.billing import PaymentRequest
from orchestrator.tools.supervisor import Stack
from services.common.clients import BillingClient, OrdersClient, make_client
from services.common.http import Reply
from tests.harness import Customer, Gateway, Inbox
from tests.invariants import assert_invariants, run_recovery

T = TypeVar("T")
PRICE = 1_000
AFFORDABLE = 10
ORDERS = 100


@pytest.fixture(scope="module")
def stack_options(smtp_options: dict[str, Any]) -> dict[str, Any]:
    return {**smtp_options, "http_retries": 0}


def _together(count: int, call: Callable[[int], T]) -> list[T]:
    """``count`` threads released together, each making one call."""
    start = threading.Barrier(count)

    def one(index: int) -> T:
        start.wait(timeout=30)
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def _all_at_once(
    stack: Stack, count: int, send: Callable[[Gateway, int], requests.Response]
) -> list[requests.Response]:
    """``count`` clients of the gateway, each with its own HTTP session, sending together."""
    clients = [Gateway(stack.urls["gateway"]) for _ in range(count)]
    return _together(count, lambda index: send(clients[index], index))


def _letters(gateway: Gateway, customer: Customer) -> list[dict]:
    letters: list[dict] = []
    for offset in range(0, 1_000, 100):
        page = gateway.request("GET", f"/letters?limit=100&offset={offset}", customer.token).json()["items"]
        letters.extend(page)
        if len(page) < 100:
            return letters
    raise AssertionError("more letters than any test makes")


def test_hundred_concurrent_orders_on_a_wallet_for_ten_pay_exactly_ten(
    gateway: Gateway, stack: Stack, inbox: Inbox
) -> None:
    customer = gateway.customer(deposit=PRICE * AFFORDABLE)

    responses = _all_at_once(stack, ORDERS, lambda client, _i: client.order(customer, price=PRICE))

    unexpected = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 201]
    assert not unexpected, f"{len(unexpected)} orders not created: {unexpected[:5]}"
    results = [r.json() for r in responses]
    statuses = Counter(result["order"]["status"] for result in results)
    assert statuses == {"paid": AFFORDABLE, "cancelled": ORDERS - AFFORDABLE}
    assert all(r["order"]["reason"] == "Insufficient funds" for r in results if r["order"]["status"] == "cancelled")
    assert len({result["order"]["id"] for result in results}) == ORDERS
    assert all(result["letter_id"] and not result["letter_pending"] for result in results)

    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 0
    operations = gateway.request("GET", "/wallet/operations?limit=100", customer.token).json()["items"]
    debits = [op for op in operations if op["kind"] == "payment"]
    paid_ids = {r["order"]["id"] for r in results if r["order"]["status"] == "paid"}
    assert len(debits) == AFFORDABLE and {op["order_id"] for op in debits} == paid_ids
    assert sorted(op["balance_after"] for op in debits) == [PRICE * n for n in range(AFFORDABLE)]

    letters = _letters(gateway, customer)
    kind_by_order = {letter["order_id"]: letter["kind"] for letter in letters}
    assert len(letters) == ORDERS == len(kind_by_order)
    expected = {r["order"]["id"]: "happy" if r["order"]["status"] == "paid" else "sad" for r in results}
    assert kind_by_order == expected
    subjects = Counter(mail["Subject"].rsplit(" ", 1)[-1] for mail in inbox.to(customer.email))
    assert subjects == {"paid": AFFORDABLE, "cancelled": ORDERS - AFFORDABLE}

    state = assert_invariants(stack.settings, delivered=True)
    assert state.wallets[customer.user_id] == 0


def test_concurrent_deposits_all_count(gateway: Gateway, stack: Stack) -> None:
    customer = gateway.customer()
    count = 40

    def deposit(client: Gateway, index: int) -> requests.Response:
        return client.request("POST", "/wallet/deposits", customer.token, json={"amount": index + 1})

    responses = _all_at_once(stack, count, deposit)

    assert [r.status_code for r in responses] == [201] * count, [
        r.text[:200] for r in responses if r.status_code != 201
    ]
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == count * (count + 1) // 2
    assert_invariants(stack.settings)


def test_concurrent_registrations_each_get_one_profile_and_one_wallet(gateway: Gateway, stack: Stack) -> None:
    count = 60
    responses = _all_at_once(stack, count, lambda client, _i: client.register())

    failed = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 201]
    assert not failed, f"{len(failed)} registrations failed: {failed[:5]}"
    state = assert_invariants(stack.settings)
    user_ids = {r.json()["id"] for r in responses}
    assert len(user_ids) == count
    assert user_ids <= state.profiles and user_ids <= state.wallets.keys()
    assert all(state.users[user_id] for user_id in user_ids)


def test_one_deposit_key_sent_at_once_tops_up_once(gateway: Gateway, stack: Stack) -> None:
    customer = gateway.customer()
    key = f"deposit-{uuid.uuid4()}"

    def deposit(client: Gateway, _index: int) -> requests.Response:
        return client.request(
            "POST", "/wallet/deposits", customer.token, json={"amount": 2_500}, headers={"Idempotency-Key": key}
        )

    responses = _all_at_once(stack, 10, deposit)

    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [r.text[:200] for r in responses]
    assert len({r.json()["operation"]["id"] for r in responses}) == 1
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 2_500
    assert_invariants(stack.settings)


@pytest.mark.parametrize("with_abandon", [False, True], ids=["payments", "payments-and-abandons"])
def test_parallel_payment_requests_for_one_order_leave_one_decision(
    gateway: Gateway, stack: Stack, with_abandon: bool
) -> None:
    """What a gateway retrying after a timeout, or recovery running beside a live flow,
    sends Billing: many requests for one order's payment at the same moment."""
    customer = gateway.customer(deposit=5_000)
    settings = attrs.evolve(stack.settings, urls=dict(stack.urls))
    billing = make_client(BillingClient, "gateway", "billing", settings, pool_size=20)
    orders = make_client(OrdersClient, "gateway", "orders", settings, pool_size=2)
    item = wire_orders.Item(name="Tea", quantity=1, price=1_000)
    new = wire_orders.NewOrder(customer.user_id, [item], "RUB", f"race-{uuid.uuid4()}", "race")
    order = orders.create_order(new).data
    request = PaymentRequest(order_id=order.id, user_id=customer.user_id, amount=1_000, currency="RUB")

    def decide(index: int) -> Reply:
        return billing.abandon_payment(request) if with_abandon and index % 2 else billing.pay(request)

    replies = _together(20, decide)

    assert {reply.status for reply in replies} <= {200, 201, 406}
    decisions = {reply.data.id for reply in replies if reply.error is None}
    assert len(decisions) <= 1 and sum(reply.status == 201 for reply in replies) == 1
    outcomes = {reply.data.outcome if reply.error is None else "declined" for reply in replies}
    assert len(outcomes) == 1
    debited = outcomes == {"debited"}
    assert with_abandon or debited
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 5_000 - 1_000 * debited
    # The order is still pending; recovery finishes it by the decision that stands.
    report = run_recovery(stack)
    assert (report.pending_found, report.paid, report.cancelled) == (1, int(debited), int(not debited))
    assert_invariants(stack.settings, delivered=True)
