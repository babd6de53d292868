"""A stack on prefilled databases: a long history written by ``syncorders prefill`` is
as consistent as one the order flow wrote, recovery finishes the orders it left
pending, and a customer with thousands of orders pages through them by cursor, each
exactly once, while new ones arrive."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.tools.prefill import Plan, Prefilled, prefill
from orchestrator.tools.supervisor import Stack
from tests.harness import Customer, Gateway, stack_settings
from tests.invariants import assert_invariants, problems, run_recovery, snapshot

PLAN = Plan(customers=500, orders=50_000, pending=20, heavy=2000, password="prefilled password", seed=11)


@pytest.fixture(scope="module")
def prefilled_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Prefilled]]:
    data_dir = tmp_path_factory.mktemp("growth")
    settings = stack_settings(data_dir)
    done = prefill(settings, PLAN)
    stack = Stack(settings, log_dir=data_dir / "logs")
    try:
        stack.start()
        yield stack, done
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def gateway(prefilled_stack: tuple[Stack, Prefilled]) -> Gateway:
    return Gateway(prefilled_stack[0].urls["gateway"])


@pytest.fixture(scope="module")
def heavy(prefilled_stack: tuple[Stack, Prefilled], gateway: Gateway) -> Customer:
    """The prefilled customer with the most orders, logged in."""
    done = prefilled_stack[1]
    first = done.customers[0]
    login = gateway.request("POST", "/auth/login", json={"login": first.login, "password": done.password})
    assert login.status_code == 200, login.text
    return Customer(first.login, done.password, first.email, first.user_id, login.json()["access_token"])


def test_the_prefill_command_writes_a_history_and_says_how_fast(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "orchestrator.tools.cli", "prefill", "--customers", "20", "--orders", "500"]
    env = {"SYNCORDERS_DATA_DIR": str(tmp_path), "SYNCORDERS_PASSWORD_HASH_MEMORY": "1024", "PATH": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stdout and "orders: 500 rows" in done.stdout
    bad = subprocess.run([*command[:4], "--customers", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "prefill: customers" in bad.stderr


def test_a_prefilled_history_holds_the_invariants_once_recovery_finished_its_pending_orders(
    prefilled_stack: tuple[Stack, Prefilled],
) -> None:
    stack, done = prefilled_stack
    state = snapshot(stack.settings)
    assert len(state.orders) == PLAN.orders and len(state.wallets) == PLAN.customers
    assert len(state.orders_with("paid")) > PLAN.orders // 2
    assert len(state.orders_with("cancelled")) > PLAN.orders // 20
    # Before recovery, the pending orders are the only thing out of place.
    broken = problems(state)
    assert len(broken) == done.pending == PLAN.pending
    assert all(line.endswith("is pending, not paid or cancelled") for line in broken), broken

    report = run_recovery(stack, older_than=60)

    assert (report.pending_found, report.paid + report.cancelled, report.failures) == (PLAN.pending, PLAN.pending, 0)
    assert report.paid and report.cancelled, report.output
    assert_invariants(stack.settings)
    assert run_recovery(stack, older_than=60).changed_nothing()


def _page(gateway: Gateway, customer: Customer, path: str, **query: object) -> dict:
    reply = gateway.request("GET", path, customer.token, params=query)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _all_by_cursor(gateway: Gateway, customer: Customer, path: str) -> list[str]:
    ids: list[str] = []
    before = None
    while True:
        page = _page(gateway, customer, path, limit=100, **({"before": before} if before else {}))
        ids += [item["id"] for item in page["items"]]
        before = page["next_before"]
        if before is None:
            return ids
        assert before == page["items"][-1]["id"]


def test_cursor_pages_give_every_order_once_while_new_orders_arrive(gateway: Gateway, heavy: Customer) -> None:
    first = _page(gateway, heavy, "/orders", limit=100)
    seen = [order["id"] for order in first["items"]]
    before, added = first["next_before"], []
    while before is not None:
        # A new order arrives between two pages: with offsets it would push one back in.
        placed = gateway.order(heavy, price=100)
        assert placed.status_code == 201, placed.text
        added.append(placed.json()["order"]["id"])
        page = _page(gateway, heavy, "/orders", limit=100, before=before)
        seen += [order["id"] for order in page["items"]]
        before = page["next_before"]

    assert len(seen) > PLAN.heavy // 2 and len(added) == -(-len(seen) // 100) - 1
    # Each order the customer had once, in order; the new ones all above them.
    assert _all_by_cursor(gateway, heavy, "/orders") == added[::-1] + seen


@pytest.mark.parametrize("path", ["/letters", "/wallet/operations"])
def test_cursor_pages_of_letters_and_operations_end_with_no_next_page(
    gateway: Gateway, heavy: Customer, path: str
) -> None:
    ids = _all_by_cursor(gateway, heavy, path)
    assert len(ids) == len(set(ids)) > 100
    # The same items by offset, in the same order.
    by_offset = []
    for offset in range(0, len(ids), 100):
        by_offset += [item["id"] for item in _page(gateway, heavy, path, limit=100, offset=offset)["items"]]
    assert by_offset == ids


def test_a_cursor_from_someone_else_gives_an_empty_page_and_a_malformed_one_a_422(
    gateway: Gateway, heavy: Customer
) -> None:
    other = gateway.customer(deposit=1000)
    theirs = gateway.order(other, price=100).json()["order"]["id"]
    assert _page(gateway, heavy, "/orders", before=theirs)["items"] == []
    assert _page(gateway, heavy, "/orders", before=str(uuid.uuid4())) == {
        "items": [],
        "limit": 20,
        "offset": 0,
        "next_before": None,
    }
    malformed = gateway.request("GET", "/orders", heavy.token, params={"before": "1 OR 1=1"})
    assert malformed.status_code == 422 and malformed.json()["code"] == "validation_failed"
