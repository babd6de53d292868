"""Many requests at once: a wallet's balance is a hard limit, lock contention never
turns into an error or a lost write, and every order gets exactly its letter.

The stack here makes no internal retries, so contention must be absorbed where it
happens (the database's lock wait), not hidden by a second attempt.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from orchestrator.supervisor import Stack
from tests.harness import Customer, Gateway, Inbox, start_stack
from tests.invariants import assert_invariants

PRICE = 1_000
AFFORDABLE = 10
ORDERS = 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[int, Inbox]) -> Iterator[Stack]:
    port, _inbox = smtp
    running = start_stack(tmp_path_factory.mktemp("stack"), smtp_host="127.0.0.1", smtp_port=port, http_retries=0)
    yield running
    running.stop()


def _all_at_once(
    stack: Stack, count: int, send: Callable[[Gateway, int], requests.Response]
) -> list[requests.Response]:
    """``count`` threads, each with its own HTTP session, released together."""
    start = threading.Barrier(count)

    def one(index: int) -> requests.Response:
        client = Gateway(stack.urls["gateway"])
        start.wait(timeout=30)
        return send(client, index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


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
