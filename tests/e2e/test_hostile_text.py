"""Hostile text against the real stack: text that is not Unicode (a lone surrogate sent
as a JSON escape, bytes that are not UTF-8) and text that is Unicode but not fit to show
(C1 controls, line and paragraph separators, bidirectional overrides and isolates).

Each is refused at the gateway with the field named, nothing is stored (read straight
from the databases), no service logs a traceback, and the system goes on: the customer's
list answers and recovery finishes the other pending orders. A second stack gets rows
written straight into Orders' database, as older versions or damage left them: recovery
reports the one it cannot read and finishes every other.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from orchestrator.tools.supervisor import Stack
from services.common.trust import ServiceTokens
from tests.e2e.conftest import log_text
from tests.e2e.test_recovery import LEASE, _gateway_dies_after
from tests.harness import Customer, Gateway, start_stack
from tests.invariants import problems, run_recovery, snapshot
from tests.planted import plant_order

# Unicode the contract refuses in every text field, by what it is.
UNSAFE = {
    "lone-surrogate": "\ud800",
    "next-line-U+0085": "\u0085",
    "line-separator-U+2028": "\u2028",
    "paragraph-separator-U+2029": "\u2029",
    "right-to-left-override-U+202E": "\u202e",
    "left-to-right-isolate-U+2066": "\u2066",
}
# Bytes that are not UTF-8: a stray byte, and a surrogate encoded as UTF-8 would.
NOT_UTF8 = {"byte-ff": b"\xff", "utf8-encoded-surrogate": b"\xed\xa0\x80"}
PLACEHOLDER = "@@HOSTILE@@"


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {"order_run_lease": LEASE}


@pytest.fixture(scope="module")
def customer(gateway: Gateway) -> Customer:
    return gateway.customer(deposit=100_000)


def order_body(customer: Customer, name: str) -> dict[str, Any]:
    return {"user_id": customer.user_id, "currency": "RUB", "items": [{"name": name, "quantity": 1, "price": 100}]}


def registration(**fields: str) -> dict[str, Any]:
    login = f"user-{uuid.uuid4().hex[:10]}"
    body = {"login": login, "password": "correct horse battery", "email": f"{login}@example.com"}
    return {**body, "first_name": "Anna", "last_name": "Petrova", **fields}


def encoded(body: dict[str, Any], raw: bytes | None = None) -> bytes:
    """The body as a client program would send it: JSON escapes for anything not
    ASCII (a lone surrogate too); ``raw`` puts bytes where the placeholder is."""
    text = json.dumps(body).encode()
    return text if raw is None else text.replace(PLACEHOLDER.encode(), raw)


def post(gateway: Gateway, path: str, data: bytes, token: str | None = None, **headers: str) -> requests.Response:
    return gateway.request("POST", path, token, data=data, headers={"Content-Type": "application/json", **headers})


def refused_field(response: requests.Response, path: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [problem["path"] for problem in body["errors"]] == [path], body


def refused_bytes(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "malformed_json"


def orders_of(stack: Stack, user_id: str) -> set[str]:
    return {order.id for order in snapshot(stack.settings).orders if order.user_id == user_id}


def no_traceback(stack: Stack) -> None:
    for service in stack.processes:
        assert "Traceback" not in log_text(stack, service), service


@pytest.mark.parametrize("char", UNSAFE.values(), ids=UNSAFE.keys())
def test_an_item_name_that_is_not_safe_text_is_422_naming_it_and_no_order_is_stored(
    stack: Stack, gateway: Gateway, customer: Customer, char: str
) -> None:
    before = orders_of(stack, customer.user_id)

    reply = post(gateway, "/orders", encoded(order_body(customer, f"Tea{char}")), customer.token)

    refused_field(reply, "$.items[0].name")
    assert orders_of(stack, customer.user_id) == before
    assert gateway.request("GET", "/orders", customer.token).status_code == 200
    no_traceback(stack)


@pytest.mark.parametrize("raw", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_an_order_body_that_is_not_utf8_is_400_and_no_order_is_stored(
    stack: Stack, gateway: Gateway, customer: Customer, raw: bytes
) -> None:
    before = orders_of(stack, customer.user_id)

    reply = post(gateway, "/orders", encoded(order_body(customer, PLACEHOLDER), b"Tea" + raw), customer.token)

    refused_bytes(reply)
    assert orders_of(stack, customer.user_id) == before
    no_traceback(stack)


@pytest.mark.parametrize("field", ["first_name", "last_name"])
@pytest.mark.parametrize("char", UNSAFE.values(), ids=UNSAFE.keys())
def test_a_name_that_is_not_safe_text_is_422_naming_it_and_no_user_is_stored(
    stack: Stack, gateway: Gateway, field: str, char: str
) -> None:
    before = snapshot(stack.settings)

    reply = post(gateway, "/auth/register", encoded(registration(**{field: f"Anna{char}"})))

    refused_field(reply, f"$.{field}")
    after = snapshot(stack.settings)
    assert (after.users, after.profiles, after.wallets) == (before.users, before.profiles, before.wallets)
    no_traceback(stack)


@pytest.mark.parametrize("char", UNSAFE.values(), ids=UNSAFE.keys())
def test_an_email_that_is_not_safe_text_is_422_naming_it(stack: Stack, gateway: Gateway, char: str) -> None:
    before = snapshot(stack.settings).users

    reply = post(gateway, "/auth/register", encoded(registration(email=f"anna{char}@example.com")))

    refused_field(reply, "$.email")
    assert snapshot(stack.settings).users == before


@pytest.mark.parametrize("raw", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_a_registration_that_is_not_utf8_is_400_and_no_user_is_stored(
    stack: Stack, gateway: Gateway, raw: bytes
) -> None:
    before = snapshot(stack.settings).users

    reply = post(gateway, "/auth/register", encoded(registration(first_name=PLACEHOLDER), b"Anna" + raw))

    refused_bytes(reply)
    assert snapshot(stack.settings).users == before
    no_traceback(stack)


def test_after_hostile_text_the_list_answers_and_recovery_finishes_the_pending_orders(
    stack: Stack, gateway: Gateway
) -> None:
    customer = gateway.customer(deposit=5_000)
    _key, pending = _gateway_dies_after(stack, customer, 1_000, "payment_decided")
    for char in UNSAFE.values():
        refused_field(post(gateway, "/orders", encoded(order_body(customer, char)), customer.token), "$.items[0].name")
        refused_field(post(gateway, "/auth/register", encoded(registration(first_name=char))), "$.first_name")
    for raw in NOT_UTF8.values():
        refused_bytes(post(gateway, "/orders", encoded(order_body(customer, PLACEHOLDER), raw), customer.token))

    listed = gateway.request("GET", "/orders", customer.token)
    assert listed.status_code == 200, listed.text
    assert [order["id"] for order in listed.json()["items"]] == [pending]
    report = run_recovery(stack)

    assert report.exit_code == 0 and (report.pending_found, report.paid) == (1, 1), report.output
    assert gateway.request("GET", f"/orders/{pending}", customer.token).json()["status"] == "paid"
    assert orders_of(stack, customer.user_id) == {pending}
    no_traceback(stack)


def test_query_strings_and_headers_that_are_not_safe_text_are_refused_cleanly(
    stack: Stack, gateway: Gateway, customer: Customer
) -> None:
    # "²" and "١" are digits to str.isdigit(), not to int().
    for query in ("limit=%C2%B2", "offset=%D9%A1", "limit=%00"):
        reply = gateway.request("GET", f"/orders?{query}", customer.token)
        assert reply.status_code == 422 and reply.json()["code"] == "validation_failed", (query, reply.text)
    keyed = post(
        gateway, "/orders", encoded(order_body(customer, "Tea")), customer.token, **{"Idempotency-Key": "k\x85"}
    )
    assert keyed.status_code == 422 and "Idempotency-Key" in keyed.json()["title"], keyed.text

    # Services read IDs from their query strings too; PostgreSQL refuses a NUL in text.
    header = {"Authorization": ServiceTokens(stack.settings.secret(), "gateway").header("orders")}
    orders = stack.urls["orders"]
    for query in ("user_id=%00", "user_id=%ED%A0%80", "user_id=x%E2%80%AE"):
        listed = requests.get(f"{orders}/orders?{query}", headers=header, timeout=10)
        assert listed.status_code == 422, (query, listed.text)
    released = requests.delete(f"{orders}/orders/{uuid.uuid4()}/run?run_id=%00", headers=header, timeout=10)
    assert released.status_code == 404, released.text
    letters = requests.get(
        f"{stack.urls['notifications']}/letters?order_id=%00",
        headers={"Authorization": ServiceTokens(stack.settings.secret(), "gateway").header("notifications")},
        timeout=10,
    )
    assert letters.status_code == 422, letters.text
    no_traceback(stack)


def test_a_newline_in_the_path_cannot_write_a_log_line(stack: Stack, gateway: Gateway) -> None:
    forged = "2026-01-01 00:00:00,000 ERROR gateway forged"
    reply = gateway.request("GET", "/orders%0A" + forged.replace(" ", "%20"))

    assert reply.status_code == 404, reply.text
    lines = log_text(stack, "gateway").splitlines()
    assert not [line for line in lines if line.startswith(forged)]
    assert [line for line in lines if "\\u000a" + forged in line]


# ------------------------------------------------------------- rows already stored


def test_recovery_reports_an_order_orders_cannot_read_and_finishes_every_other(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    stack = start_stack(tmp_path_factory.mktemp("planted"), order_run_lease=LEASE)
    try:
        gateway = Gateway(stack.urls["gateway"])
        first, second, legacy, damaged = (gateway.customer(deposit=5_000) for _ in range(4))
        _key, abandoned = _gateway_dies_after(stack, first, 1_000, "order_created")
        _key, debited = _gateway_dies_after(stack, first, 1_000, "payment_decided")
        _key, other = _gateway_dies_after(stack, second, 2_000, "payment_decided")
        # Stored by the version that took any text: JSON escapes, as json.dumps wrote them.
        old = plant_order(
            stack.settings,
            legacy.user_id,
            '[{"name": "T\\ud800", "quantity": 1, "price": 60}, {"name": "Tea\\u202e", "quantity": 1, "price": 40}]',
        )
        # Damaged: no contract has an item of quantity 0.
        bad = plant_order(stack.settings, damaged.user_id, '[{"name": "Tea", "quantity": 0, "price": 100}]')

        for owner in (first, second):
            assert gateway.request("GET", "/orders", owner.token).status_code == 200
        shown = gateway.request("GET", "/orders", legacy.token)
        assert shown.status_code == 200, shown.text
        assert [item["name"] for item in shown.json()["items"][0]["items"]] == ["T\ufffd", "Tea\ufffd"]
        assert gateway.request("GET", "/orders", damaged.token).status_code == 502

        report = run_recovery(stack)

        assert report.exit_code == 1 and report.failures == 1, report.output
        # The damaged row was written last: first in the newest-first listing.
        assert "pending order no. 1 of the listing" in report.output, report.output
        assert (report.pending_found, report.paid, report.cancelled) == (4, 2, 2), report.output
        statuses = {order.id: order.status for order in snapshot(stack.settings).orders}
        assert {key: statuses[key] for key in (abandoned, debited, other, old, bad)} == {
            abandoned: "cancelled",
            debited: "paid",
            other: "paid",
            old: "cancelled",
            bad: "pending",
        }
        assert problems(snapshot(stack.settings)) == [f"order {bad} is pending, not paid or cancelled"]
        assert f"order {bad} (row " in log_text(stack, "orders")
        assert "Traceback" not in log_text(stack, "orders")

        again = run_recovery(stack)
        assert (again.exit_code, again.failures, again.pending_found, again.letters_sent) == (1, 1, 0, 0), again.output
    finally:
        stack.stop()
