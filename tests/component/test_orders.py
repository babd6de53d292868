"""Orders through its HTTP interface: creation keyed by idempotency, status rules."""

from __future__ import annotations

import uuid

import pytest

from contracts.types import MAX_AMOUNT, MAX_ITEMS, MAX_QUANTITY, MAX_TOTAL
from services.orders.app import create_app
from services.orders.store import OrderStore
from tests.component.conftest import settings_file

USER = str(uuid.uuid4())


@pytest.fixture
def orders(make_caller):
    return make_caller(create_app, "orders")


def new_order(key: str = "k1", run: str = "run-1", price: int = 250, quantity: int = 2) -> dict:
    return {
        "user_id": USER,
        "currency": "RUB",
        "idempotency_key": key,
        "run_id": run,
        "items": [{"name": "Tea", "quantity": quantity, "price": price}],
    }


def test_create_makes_a_pending_order_with_the_total_from_the_items(orders) -> None:
    created = orders("POST", "/orders", json=new_order())
    assert created.status_code == 201
    assert created.json["status"] == "pending" and created.json["total"] == 500
    assert uuid.UUID(created.json["id"])


def test_same_key_and_body_returns_the_same_order(orders) -> None:
    first = orders("POST", "/orders", json=new_order())
    again = orders("POST", "/orders", json=new_order())
    assert again.status_code == 200 and again.json["id"] == first.json["id"]


def test_same_key_with_another_body_is_422(orders) -> None:
    orders("POST", "/orders", json=new_order())
    other = orders("POST", "/orders", json=new_order(price=999))
    assert other.status_code == 409 and other.json["code"] == "idempotency_key_reused"


def test_a_parallel_run_of_the_same_key_is_409_until_released(orders) -> None:
    first = orders("POST", "/orders", json=new_order(run="a")).json
    assert orders("POST", "/orders", json=new_order(run="b")).status_code == 409
    assert orders("DELETE", f"/orders/{first['id']}/run", params={"run_id": "a"}).status_code == 204
    assert orders("POST", "/orders", json=new_order(run="b")).status_code == 200


def test_status_moves_only_from_pending_and_repeats_are_no_ops(orders) -> None:
    order = orders("POST", "/orders", json=new_order()).json
    paid = orders("PUT", f"/orders/{order['id']}/status", json={"status": "paid"})
    assert paid.status_code == 200 and paid.json["status"] == "paid"
    assert orders("PUT", f"/orders/{order['id']}/status", json={"status": "paid"}).status_code == 200
    conflict = orders("PUT", f"/orders/{order['id']}/status", json={"status": "cancelled", "reason": "x"})
    assert conflict.status_code == 409 and conflict.json["code"] == "status_conflict"
    back = orders("PUT", f"/orders/{order['id']}/status", json={"status": "pending"})
    assert back.status_code == 422


def test_the_largest_order_the_item_bounds_admit_is_taken_and_its_total_kept_exactly(orders) -> None:
    item = {"name": "Gold", "quantity": MAX_QUANTITY, "price": MAX_AMOUNT}
    body = {**new_order(), "items": [item] * MAX_ITEMS}
    response = orders("POST", "/orders", json=body)
    assert response.status_code == 201
    assert response.json["total"] == MAX_TOTAL == 10**18
    assert orders("GET", f"/orders/{response.json['id']}").json["total"] == MAX_TOTAL


def test_listing_filters_by_owner_and_status(orders) -> None:
    first = orders("POST", "/orders", json=new_order("a")).json
    orders("POST", "/orders", json=new_order("b"))
    orders("PUT", f"/orders/{first['id']}/status", json={"status": "cancelled", "reason": "test"})
    pending = orders("GET", "/orders", params={"user_id": USER, "status": "pending"}).json["items"]
    assert len(pending) == 1 and pending[0]["id"] != first["id"]
    assert orders("GET", "/orders", params={"user_id": str(uuid.uuid4())}).json["items"] == []
    assert orders("GET", "/orders", params={"status": "lost"}).status_code == 422


def test_unknown_order_is_404(orders) -> None:
    assert orders("GET", f"/orders/{uuid.uuid4()}").status_code == 404
    assert orders("GET", "/orders/not-a-uuid").status_code == 404


@pytest.mark.parametrize(
    "moment",
    [
        "",
        "2026-01-31",
        "2026-01-31T09:30:00+03:00",
        "2026-01-31T09:30:00",
        "2026-02-30T09:30:00Z",
        "0000-01-01T00:00:00Z",
        "2026-01-31T23:59:60Z",
        "2026-01-31T09:30:00.1234567Z",
        "٢٠٢٦-01-31T09:30:00Z",
    ],
)
def test_a_time_filter_that_is_not_a_documented_utc_time_is_422(orders, moment: str) -> None:
    answer = orders("GET", "/orders", params={"updated_before": moment})
    assert answer.status_code == 422 and answer.json["code"] == "validation_failed", moment


def test_time_filters_take_utc_times_as_the_services_write_them(orders) -> None:
    created = orders("POST", "/orders", json=new_order()).json
    before = orders("GET", "/orders", params={"updated_before": "2000-01-01T00:00:00Z"}).json["items"]
    after = orders("GET", "/orders", params={"updated_after": "2000-01-01T00:00:00.5Z"}).json["items"]
    assert before == [] and [order["id"] for order in after] == [created["id"]]


@pytest.mark.parametrize("status", ["", "PAID", "unknown"])
def test_a_status_filter_outside_the_documented_ones_is_422(orders, status: str) -> None:
    assert orders("GET", "/orders", params={"status": status}).status_code == 422


def test_the_app_keeps_orders_in_the_store_it_is_given(make_caller, open_store, settings) -> None:
    store = open_store(OrderStore)
    orders = make_caller(create_app, "orders", store=store)
    created = orders("POST", "/orders", json=new_order())
    assert created.status_code == 201
    with store.connection():
        row = store.order(created.json["id"])
    assert row is not None and (row.user_id, row.total, row.status) == (USER, 500, "pending")
    assert not settings_file(settings, "orders").exists()


def test_a_new_order_reads_back_as_it_was_answered(orders) -> None:
    created = orders("POST", "/orders", json=new_order())
    assert orders("GET", f"/orders/{created.json['id']}").json == created.json
    # The same key again answers the stored order, with the claim's time.
    again = orders("POST", "/orders", json=new_order())
    assert {**again.json, "updated_at": created.json["updated_at"]} == created.json
    assert orders("GET", f"/orders/{created.json['id']}").json == again.json
