"""Every service refuses hostile text when called directly, not only behind the gateway:
a lone surrogate, bytes that are not UTF-8, and the characters ``types.text`` refuses.
Orders also sends back what an older version stored, and says clearly when a row is
damaged beyond that."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import falcon.testing
import pytest

from services.auth.app import create_app as auth_app
from services.common.config import Settings
from services.notifications.app import create_app as notifications_app
from services.orders.app import create_app as orders_app
from services.profiles.app import create_app as profiles_app
from tests.planted import plant_order

USER = str(uuid.uuid4())
HOSTILE = {
    "lone-surrogate": "\ud800",
    "next-line": "\u0085",
    "line-separator": "\u2028",
    "paragraph-separator": "\u2029",
    "right-to-left-override": "\u202e",
    "left-to-right-isolate": "\u2066",
    "escape": "\x1b",
}


def new_order(name: str = "Tea", key: str = "k1", run: str = "run-1") -> dict[str, Any]:
    items = [{"name": name, "quantity": 1, "price": 100}]
    return {"user_id": USER, "currency": "RUB", "idempotency_key": key, "run_id": run, "items": items}


def registration(**fields: str) -> dict[str, Any]:
    base = {"login": "anna", "password": "correct horse battery", "email": "anna@example.com"}
    return {**base, "first_name": "Anna", "last_name": "Petrova", **fields}


def profile(**fields: str) -> dict[str, Any]:
    return {"email": "anna@example.com", "first_name": "Anna", "last_name": "Petrova", **fields}


def letter(**fields: str) -> dict[str, Any]:
    base = {"order_id": str(uuid.uuid4()), "user_id": USER, "status": "cancelled", "total": 100, "currency": "RUB"}
    return {**base, "reason": "Insufficient funds", **fields}


@attrs.frozen
class Case:
    """One field of one operation, called as its documented caller calls it."""

    app: Callable[[Settings], falcon.App]
    service: str
    caller: str
    method: str
    path: str
    body: Callable[[str], dict[str, Any]]
    field: str

    def call(self, make_caller: Callable[..., Any], body: bytes) -> falcon.testing.Result:
        caller = make_caller(self.app, self.service, caller=self.caller)
        return caller(self.method, self.path, body=body, headers={"Content-Type": "application/json"})


STATUS = f"/orders/{uuid.uuid4()}/status"
CASES = {
    "orders-item-name": Case(
        orders_app, "orders", "gateway", "POST", "/orders", lambda t: new_order(f"Tea{t}"), "$.items[0].name"
    ),
    "orders-idempotency-key": Case(
        orders_app, "orders", "gateway", "POST", "/orders", lambda t: new_order(key=f"k{t}"), "$.idempotency_key"
    ),
    "orders-reason": Case(
        orders_app,
        "orders",
        "gateway",
        "PUT",
        STATUS,
        lambda t: {"status": "cancelled", "reason": f"No{t}"},
        "$.reason",
    ),
    "auth-first-name": Case(
        auth_app, "auth", "gateway", "POST", "/users", lambda t: registration(first_name=f"Anna{t}"), "$.first_name"
    ),
    "auth-last-name": Case(
        auth_app, "auth", "gateway", "POST", "/users", lambda t: registration(last_name=f"P{t}"), "$.last_name"
    ),
    "auth-login": Case(
        auth_app, "auth", "gateway", "POST", "/tokens", lambda t: {"login": f"anna{t}", "password": "x"}, "$.login"
    ),
    "profiles-first-name": Case(
        profiles_app,
        "profiles",
        "auth",
        "PUT",
        f"/profiles/{USER}",
        lambda t: profile(first_name=f"A{t}"),
        "$.first_name",
    ),
    "profiles-email": Case(
        profiles_app, "profiles", "auth", "PUT", f"/profiles/{USER}", lambda t: profile(email=f"a{t}@ex.com"), "$.email"
    ),
    "notifications-reason": Case(
        notifications_app, "notifications", "gateway", "POST", "/letters", lambda t: letter(reason=f"No{t}"), "$.reason"
    ),
}


def send(caller: Any, method: str, path: str, body: bytes) -> falcon.testing.Result:
    return caller(method, path, body=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_each_service_refuses_hostile_text_naming_the_field(make_caller, text: str, case: Case) -> None:
    # JSON escapes throughout, as a client would send a lone surrogate.
    reply = case.call(make_caller, json.dumps(case.body(text)).encode())

    assert reply.status_code == 422, reply.text
    assert reply.json["code"] == "validation_failed"
    assert [problem["path"] for problem in reply.json["errors"]] == [case.field]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("raw", [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf"], ids=["byte-ff", "surrogate", "overlong"])
def test_each_service_answers_400_to_a_body_that_is_not_utf8(make_caller, caplog, raw: bytes, case: Case) -> None:
    caplog.set_level(logging.INFO)

    reply = case.call(make_caller, json.dumps(case.body("@@")).encode().replace(b"@@", raw))

    assert reply.status_code == 400, reply.text
    assert reply.json["code"] == "malformed_json"
    assert not [record for record in caplog.records if record.exc_info]


@pytest.fixture
def orders(make_caller):
    return make_caller(orders_app, "orders")


def test_nothing_is_stored_for_a_refused_order(orders) -> None:
    send(orders, "POST", "/orders", json.dumps(new_order("T\ud800")).encode())
    assert orders("GET", "/orders", params={"user_id": USER}).json["items"] == []
    # The same key is free for a proper order: nothing half-made holds it.
    assert orders("POST", "/orders", json=new_order()).status_code == 201


def test_an_order_stored_before_text_was_checked_is_sent_with_replacement_characters(orders, settings) -> None:
    old = plant_order(settings, USER, '[{"name": "T\\ud800", "quantity": 1, "price": 60}, '
                      '{"name": "Tea\\u202e\\u2028", "quantity": 1, "price": 40}]')  # fmt: skip

    listed = orders("GET", "/orders", params={"user_id": USER})
    one = orders("GET", f"/orders/{old}")

    assert listed.status_code == 200 and one.status_code == 200
    assert [item["name"] for item in one.json["items"]] == ["T\ufffd", "Tea\ufffd\ufffd"]
    assert listed.json["items"] == [one.json]
    cancelled = orders("PUT", f"/orders/{old}/status", json={"status": "cancelled", "reason": "Abandoned"})
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"


@pytest.mark.parametrize(
    "items",
    ['[{"name": "Tea", "quantity": 0, "price": 100}]', "not json", '{"name": "Tea"}', '[{"name": "Tea"}]'],
    ids=["quantity-0", "not-json", "not-a-list", "item-without-price"],
)
def test_a_damaged_order_is_a_clear_500_naming_it_in_the_log_without_a_traceback(
    orders, settings, caplog, items: str
) -> None:
    good = orders("POST", "/orders", json=new_order()).json["id"]
    bad = plant_order(settings, USER, items)
    caplog.set_level(logging.INFO)

    listed = orders("GET", "/orders", params={"user_id": USER})
    one = orders("GET", f"/orders/{bad}")

    for reply in (listed, one):
        assert reply.status_code == 500 and reply.json["code"] == "order_unreadable", reply.text
        assert bad in reply.json["description"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 2 and all(line.startswith(f"order {bad} (row ") for line in logged), logged
    assert not [record for record in caplog.records if record.exc_info]
    # The other orders still read, one at a time or in a page that leaves the bad one out.
    assert orders("GET", f"/orders/{good}").status_code == 200
    assert orders("GET", "/orders", params={"user_id": USER, "offset": "1"}).json["items"][0]["id"] == good


@pytest.mark.parametrize("value", ["\x00", "x", "3F1C8A44-9B1E-4C55-8F2A-1D2E3F405060", "\u202e"])
def test_ids_in_the_query_string_must_be_uuids(orders, make_caller, value: str) -> None:
    letters = make_caller(notifications_app, "notifications")
    for caller, path, name in (
        (orders, "/orders", "user_id"),
        (letters, "/letters", "user_id"),
        (letters, "/letters", "order_id"),
    ):
        reply = caller("GET", path, params={name: value})
        assert reply.status_code == 422 and name in reply.json["description"], (path, name, reply.text)


@pytest.mark.parametrize("value", ["\x00", "run\u202e", "r" * 129])
def test_a_run_id_no_run_could_hold_releases_nothing(orders, value: str) -> None:
    order = orders("POST", "/orders", json=new_order()).json
    assert orders("DELETE", f"/orders/{order['id']}/run", params={"run_id": value}).status_code == 204
    # The claim of run-1 still holds: another run of the same key is refused.
    assert orders("POST", "/orders", json=new_order(run="run-2")).status_code == 409
    assert orders("DELETE", f"/orders/{uuid.uuid4()}/run", params={"run_id": value}).status_code == 404


@pytest.mark.parametrize("value", ["²", "١", "1\u0085"])
def test_page_numbers_are_ascii_digits(orders, value: str) -> None:
    reply = orders("GET", "/orders", params={"limit": value})
    assert reply.status_code == 422 and reply.json["code"] == "validation_failed", reply.text
