"""``syncorders recover`` finishes what failures left: orders a dead gateway left
``pending`` at any step, letters Notifications could not make, letters SMTP could not
take. Run twice, the second run changes nothing.

A gateway that dies mid-flow is played by the gateway's own flow, run in the test
process and cut off after a step, exactly where a crash would stop it.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import attrs
import pytest

from orchestrator import flow
from orchestrator.tools.supervisor import Stack
from services.common.clients import BillingClient, NotificationsClient, OrdersClient, make_client
from tests.harness import Customer, Gateway, Inbox, start_stack
from tests.invariants import assert_invariants, run_recovery, snapshot

LEASE = 1.0
# The test SMTP server answers at once; a short timeout keeps short the wait recovery
# makes for a letter's delivery claim to lapse.
SMTP_TIMEOUT = 1.0
ABANDONED = "Abandoned: the order never reached payment"


@pytest.fixture(scope="module")
def stack_options(smtp_options: dict[str, Any]) -> dict[str, Any]:
    return {**smtp_options, "order_run_lease": LEASE, "smtp_timeout": SMTP_TIMEOUT}


def _services(stack: Stack) -> flow.Services:
    settings = attrs.evolve(stack.settings, urls=dict(stack.urls))
    return flow.Services(
        orders=make_client(OrdersClient, "gateway", "orders", settings, pool_size=2),
        billing=make_client(BillingClient, "gateway", "billing", settings, pool_size=2),
        notifications=make_client(NotificationsClient, "gateway", "notifications", settings, pool_size=2),
    )


def _gateway_dies_after(stack: Stack, customer: Customer, price: int, step: str) -> tuple[str, str]:
    """Run the order flow up to and including the step named ``step``, then stop as a killed gateway
    would: no answer, no release of the order. Returns the key and the order ID."""
    key = f"cut-{uuid.uuid4()}"
    body = {"user_id": customer.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": price}]}
    run = flow.Run(services=_services(stack), user_id=customer.user_id, body=body, idempotency_key=key)
    flow.run_flow(run, until=step)
    assert run.order is not None
    return key, run.order.id


@pytest.mark.parametrize(
    ("died_after", "deposit", "status", "reason", "debited"),
    [
        ("order_created", 5_000, "cancelled", ABANDONED, False),
        ("payment_decided", 5_000, "paid", None, True),
        ("payment_decided", 100, "cancelled", "Insufficient funds", False),
        ("status_updated", 5_000, "paid", None, True),
    ],
    ids=["after-create", "after-debit", "after-decline", "after-status"],
)
def test_recovery_finishes_an_order_whose_gateway_died(
    stack: Stack,
    gateway: Gateway,
    inbox: Inbox,
    died_after: str,
    deposit: int,
    status: str,
    reason: str | None,
    debited: bool,
) -> None:
    customer = gateway.customer(deposit=deposit)
    key, order_id = _gateway_dies_after(stack, customer, 1_000, died_after)

    report = run_recovery(stack)

    assert report.exit_code == 0, report.output
    was_pending = died_after != "status_updated"
    assert (report.pending_found, report.paid + report.cancelled) == (int(was_pending), int(was_pending))
    assert report.letters_sent == 1
    order = gateway.request("GET", f"/orders/{order_id}", customer.token).json()
    assert (order["status"], order["reason"]) == (status, reason)
    balance = gateway.request("GET", "/wallet", customer.token).json()["balance"]
    assert balance == deposit - (1_000 if debited else 0)
    [letter] = gateway.request("GET", "/letters", customer.token).json()["items"]
    assert (letter["order_id"], letter["kind"]) == (order_id, "happy" if status == "paid" else "sad")
    assert len(inbox.to(customer.email)) == 1

    # The client's retry, whenever it comes, gets the finished order and moves no money.
    again = gateway.order(customer, price=1_000, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order"]["status"] == status and again.json()["letter_id"] == letter["id"]
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == balance

    assert run_recovery(stack).changed_nothing()
    assert_invariants(stack.settings, delivered=True)


def test_recovery_leaves_orders_younger_than_the_threshold_alone(stack: Stack, gateway: Gateway) -> None:
    customer = gateway.customer(deposit=5_000)
    _key, order_id = _gateway_dies_after(stack, customer, 1_000, "payment_decided")

    early = run_recovery(stack, older_than=3_600)

    assert early.pending_found == 0
    assert [o.status for o in snapshot(stack.settings).orders if o.id == order_id] == ["pending"]
    late = run_recovery(stack, older_than=0)
    assert (late.pending_found, late.paid) == (1, 1)
    assert_invariants(stack.settings, delivered=True)


def test_letter_missed_while_notifications_was_down_is_sent_once_by_recovery(
    stack: Stack, gateway: Gateway, inbox: Inbox
) -> None:
    customer = gateway.customer(deposit=5_000)
    stack.kill("notifications")
    try:
        reply = gateway.order(customer, price=1_000, key=f"order-{uuid.uuid4()}")
    finally:
        stack.start_one("notifications")

    assert reply.status_code == 201, reply.text
    result = reply.json()
    assert result["order"]["status"] == "paid" and result["payment"]["amount"] == 1_000
    assert (result["letter_pending"], result["letter_id"]) == (True, None)
    assert gateway.request("GET", "/letters", customer.token).json()["items"] == []

    # Only final orders updated within --letters-since are looked at.
    outside = run_recovery(stack, letters_since=0)
    assert (outside.letters_checked, outside.letters_sent) == (0, 0)
    report = run_recovery(stack)

    assert report.exit_code == 0 and report.letters_sent == 1, report.output
    [letter] = gateway.request("GET", "/letters", customer.token).json()["items"]
    assert (letter["order_id"], letter["kind"], letter["delivery"]) == (result["order"]["id"], "happy", "sent")
    assert len(inbox.to(customer.email)) == 1
    assert run_recovery(stack).changed_nothing()
    assert_invariants(stack.settings, delivered=True)


def test_recovery_with_notifications_down_finishes_the_order_and_reports_the_missing_letter(
    stack: Stack, gateway: Gateway, inbox: Inbox
) -> None:
    customer = gateway.customer(deposit=5_000)
    _key, order_id = _gateway_dies_after(stack, customer, 1_000, "payment_decided")
    stack.kill("notifications")
    try:
        report = run_recovery(stack)
    finally:
        stack.start_one("notifications")

    assert (report.pending_found, report.paid, report.letters_sent) == (1, 1, 0)
    assert report.exit_code == 1 and report.failures >= 1, report.output
    assert f"order {order_id}" in report.output
    assert [o.status for o in snapshot(stack.settings).orders if o.id == order_id] == ["paid"]
    # Run again once Notifications is back: the letter goes out, once.
    again = run_recovery(stack)
    assert again.exit_code == 0 and (again.pending_found, again.letters_sent) == (0, 1), again.output
    assert len(inbox.to(customer.email)) == 1
    assert run_recovery(stack).changed_nothing()
    assert_invariants(stack.settings, delivered=True)


def test_recovery_with_orders_down_reports_it_instead_of_crashing(stack: Stack, gateway: Gateway) -> None:
    stack.kill("orders")
    try:
        report = run_recovery(stack)
    finally:
        stack.start_one("orders")

    assert report.exit_code == 1 and report.failures >= 1, report.output
    assert "orders: unavailable" in report.output and "Traceback" not in report.output
    assert run_recovery(stack).exit_code == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_letters_refused_by_smtp_are_kept_and_delivered_once_smtp_is_back(
    tmp_path_factory: pytest.TempPathFactory, smtp: tuple[int, Inbox]
) -> None:
    live_port, inbox = smtp
    stack = start_stack(
        tmp_path_factory.mktemp("nosmtp"),
        smtp_host="127.0.0.1",
        smtp_port=_closed_port(),
        order_run_lease=LEASE,
        smtp_timeout=SMTP_TIMEOUT,
    )
    try:
        gateway = Gateway(stack.urls["gateway"])
        customer = gateway.customer(deposit=1_000)
        retried_key = f"order-{uuid.uuid4()}"
        retried = gateway.order(customer, price=400, key=retried_key).json()
        recovered = gateway.order(customer, price=5_000).json()
        for result in (retried, recovered):
            assert result["letter_id"] is not None and result["letter_pending"] is False
            letter = gateway.request("GET", f"/letters/{result['letter_id']}", customer.token).json()
            assert letter["delivery"] == "failed"
        assert inbox.to(customer.email) == []
        # While SMTP still refuses, recovery says the letters are not delivered.
        refused = run_recovery(stack)
        assert refused.exit_code == 1 and refused.failures == 2, refused.output
        assert "not delivered" in refused.output

        stack.settings = attrs.evolve(stack.settings, smtp_port=live_port)
        stack.restart("notifications")
        # The same request again delivers its letter; recovery delivers the other.
        again = gateway.order(customer, price=400, key=retried_key)
        assert again.status_code == 201 and again.json()["letter_id"] == retried["letter_id"]
        assert gateway.request("GET", f"/letters/{retried['letter_id']}", customer.token).json()["delivery"] == "sent"
        report = run_recovery(stack)

        assert report.exit_code == 0 and report.failures == 0 and report.letters_sent == 0, report.output
        letters = gateway.request("GET", "/letters", customer.token).json()["items"]
        assert sorted((x["kind"], x["delivery"]) for x in letters) == [("happy", "sent"), ("sad", "sent")]
        subjects = sorted(mail["Subject"] for mail in inbox.to(customer.email))
        assert subjects == sorted(
            [f"Your order {retried['order']['id']} is paid", f"Your order {recovered['order']['id']} was cancelled"]
        )
        assert run_recovery(stack).changed_nothing()
        assert len(inbox.to(customer.email)) == 2
        assert_invariants(stack.settings, delivered=True)
    finally:
        stack.stop()
