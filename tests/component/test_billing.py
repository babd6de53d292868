"""Billing through its HTTP interface: wallets, deposits, one decision per order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from contracts.operations import Page
from services.billing.app import create_app
from services.billing.store import BillingStore
from tests.component.conftest import settings_file


@pytest.fixture
def billing(make_caller):
    return make_caller(create_app, "billing")


@pytest.fixture
def wallet(billing):
    user = str(uuid.uuid4())
    assert billing.calling_as("auth")("PUT", f"/wallets/{user}", json={"currency": "RUB"}).status_code == 201
    return user


def pay(billing, user: str, amount: int, order: str | None = None, currency: str = "RUB"):
    body = {"order_id": order or str(uuid.uuid4()), "user_id": user, "amount": amount, "currency": currency}
    return billing("POST", "/payments", json=body)


def test_opening_a_wallet_twice_returns_the_first(billing, wallet) -> None:
    opener = billing.calling_as("auth")
    again = opener("PUT", f"/wallets/{wallet}", json={"currency": "RUB"})
    assert again.status_code == 200 and again.json["balance"] == 0
    other = opener("PUT", f"/wallets/{wallet}", json={"currency": "USD"})
    assert other.status_code == 409 and other.json["code"] == "currency_mismatch"


def test_deposit_then_payment_moves_the_balance(billing, wallet) -> None:
    assert billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000}).status_code == 201
    paid = pay(billing, wallet, 400)
    assert paid.status_code == 201
    assert paid.json["outcome"] == "debited" and paid.json["operation"]["balance_after"] == 600
    assert billing("GET", f"/wallets/{wallet}").json["balance"] == 600


def test_insufficient_funds_is_406_and_leaves_the_balance(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 100})
    refused = pay(billing, wallet, 101)
    assert refused.status_code == 406
    assert refused.json["code"] == "insufficient_funds" and refused.json["title"] == "Insufficient funds"
    assert billing("GET", f"/wallets/{wallet}").json["balance"] == 100


def test_a_second_payment_for_the_same_order_returns_the_first(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000})
    order = str(uuid.uuid4())
    first, second = pay(billing, wallet, 300, order), pay(billing, wallet, 300, order)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json == second.json
    assert billing("GET", f"/wallets/{wallet}").json["balance"] == 700


def test_a_declined_order_stays_declined_after_a_top_up(billing, wallet) -> None:
    order = str(uuid.uuid4())
    assert pay(billing, wallet, 500, order).status_code == 406
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000})
    assert pay(billing, wallet, 500, order).status_code == 406
    assert billing("GET", f"/wallets/{wallet}").json["balance"] == 1000


def test_same_order_with_other_terms_is_a_conflict(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000})
    order = str(uuid.uuid4())
    pay(billing, wallet, 300, order)
    conflict = pay(billing, wallet, 301, order)
    assert conflict.status_code == 409 and conflict.json["code"] == "payment_conflict"


def test_abandon_records_a_decline_that_a_late_payment_cannot_override(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000})
    order = str(uuid.uuid4())
    body = {"user_id": wallet, "amount": 300, "currency": "RUB"}
    abandoned = billing("POST", f"/payments/{order}/abandon", json=body)
    assert abandoned.status_code == 201 and abandoned.json["outcome"] == "declined"
    assert pay(billing, wallet, 300, order).status_code == 406
    assert billing("GET", f"/wallets/{wallet}").json["balance"] == 1000


def test_abandon_keeps_a_debit_that_happened(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000})
    order = str(uuid.uuid4())
    pay(billing, wallet, 300, order)
    body = {"user_id": wallet, "amount": 300, "currency": "RUB"}
    kept = billing("POST", f"/payments/{order}/abandon", json=body)
    assert kept.status_code == 200 and kept.json["outcome"] == "debited"


def test_deposit_with_a_key_is_applied_once(billing, wallet) -> None:
    body = {"amount": 250, "idempotency_key": "k1"}
    first = billing("POST", f"/wallets/{wallet}/deposits", json=body)
    second = billing("POST", f"/wallets/{wallet}/deposits", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json["wallet"]["balance"] == 250
    reused = billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1, "idempotency_key": "k1"})
    assert reused.status_code == 409 and reused.json["code"] == "idempotency_key_reused"


def test_operations_list_newest_first_and_pages(billing, wallet) -> None:
    for amount in (1, 2, 3):
        billing("POST", f"/wallets/{wallet}/deposits", json={"amount": amount})
    listed = billing("GET", f"/wallets/{wallet}/operations", params={"limit": "2"}).json
    assert [op["amount"] for op in listed["items"]] == [3, 2]
    rest = billing("GET", f"/wallets/{wallet}/operations", params={"limit": "2", "offset": "2"}).json
    assert [op["amount"] for op in rest["items"]] == [1]
    assert billing("GET", f"/wallets/{wallet}/operations", params={"limit": "1000"}).status_code == 422


def test_only_auth_opens_wallets_and_only_the_gateway_pays(billing, wallet) -> None:
    user = str(uuid.uuid4())
    assert billing("PUT", f"/wallets/{user}", json={"currency": "RUB"}).status_code == 403
    assert pay(billing.calling_as("auth"), wallet, 1).status_code == 403
    assert billing.client.simulate_post("/payments", json={}).status_code == 401


def test_unknown_wallet_is_404(billing) -> None:
    assert billing("GET", f"/wallets/{uuid.uuid4()}").status_code == 404


def test_an_order_in_another_currency_is_declined_without_a_debit(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 1000})
    refused = pay(billing, wallet, 100, currency="USD")
    assert refused.status_code == 406 and refused.json["code"] == "currency_mismatch"
    assert billing("GET", f"/wallets/{wallet}").json["balance"] == 1000


def test_a_decline_carries_its_code_beside_its_text(billing, wallet) -> None:
    order = str(uuid.uuid4())
    short = pay(billing, wallet, 500, order)
    assert short.status_code == 406
    assert (short.json["code"], short.json["title"]) == ("insufficient_funds", "Insufficient funds")
    decided = billing("GET", f"/payments/{order}")
    assert (decided.json["outcome"], decided.json["reason_code"]) == ("declined", "insufficient_funds")

    foreign = pay(billing, wallet, 500, currency="USD")
    assert foreign.status_code == 406 and foreign.json["code"] == "currency_mismatch"
    assert foreign.json["title"] == "Currency mismatch: the wallet holds RUB"


def test_a_payment_without_a_wallet_is_refused_as_no_wallet(billing) -> None:
    refused = pay(billing, str(uuid.uuid4()), 500)
    assert refused.status_code == 404 and refused.json["code"] == "no_wallet"


def test_a_database_made_before_decline_codes_gains_the_column_on_start(settings, make_caller) -> None:
    from services.common.db import open_database

    path = settings.database("billing")
    old = open_database(path, max_connections=1)
    with old.connection_context():
        old.execute_sql(
            'CREATE TABLE "payment" ("id" VARCHAR(36) PRIMARY KEY, "order_id" VARCHAR(36) NOT NULL UNIQUE, '
            '"user_id" VARCHAR(36) NOT NULL, "amount" BIGINT NOT NULL, "currency" VARCHAR(3) NOT NULL, '
            '"outcome" VARCHAR(16) NOT NULL, "reason" VARCHAR(200), "operation_id" VARCHAR(36), '
            '"created_at" DATETIME NOT NULL)'
        )
    old.close_all()

    billing = make_caller(create_app, "billing")
    user = str(uuid.uuid4())
    billing.calling_as("auth")("PUT", f"/wallets/{user}", json={"currency": "RUB"})
    declined = pay(billing, user, 100)

    assert declined.status_code == 406 and declined.json["code"] == "insufficient_funds"
    check = open_database(path, max_connections=1)
    with check.connection_context():
        columns = {column.name for column in check.get_columns("payment")}
    check.close_all()
    assert "reason_code" in columns


@pytest.mark.parametrize(
    "query",
    [
        "offset=%C2%B2",
        "offset=%D9%A3",
        "limit=%EF%BC%95",
        "offset=-1",
        "offset=1000000000",
        "limit=0",
        "limit=",
        "offset=1.0",
    ],
)
def test_a_page_bound_outside_the_documented_range_is_422_never_a_failure(billing, wallet, query: str) -> None:
    # "²" and "٣" pass str.isdigit(); int() refuses the first and reads the second as 3.
    answer = billing("GET", f"/wallets/{wallet}/operations", query_string=query)
    assert answer.status_code == 422 and answer.json["code"] == "validation_failed", answer.text


def test_the_largest_offset_the_document_allows_is_taken(billing, wallet) -> None:
    answer = billing("GET", f"/wallets/{wallet}/operations", query_string="offset=999999999&limit=100")
    assert answer.status_code == 200 and answer.json["items"] == []


def test_a_payment_as_large_as_an_order_total_can_be_is_declined_not_refused(billing, wallet) -> None:
    billing("POST", f"/wallets/{wallet}/deposits", json={"amount": 10**12})
    declined = pay(billing, wallet, 10**18)
    assert declined.status_code == 406 and declined.json["code"] == "insufficient_funds"
    assert pay(billing, wallet, 10**18 + 1).status_code == 422


def test_the_app_keeps_wallets_in_the_store_it_is_given(make_caller, open_store, settings) -> None:
    store = open_store(BillingStore)
    billing = make_caller(create_app, "billing", store=store)
    user = str(uuid.uuid4())
    assert billing.calling_as("auth")("PUT", f"/wallets/{user}", json={"currency": "RUB"}).status_code == 201
    assert billing("POST", f"/wallets/{user}/deposits", json={"amount": 1000}).status_code == 201
    assert pay(billing, user, 400).status_code == 201
    with store.connection():
        wallet, (operations, _following) = store.wallet(user), store.operations(user, Page(limit=10))
    assert wallet is not None and wallet.balance == 600
    assert [(op.kind, op.amount, op.balance_after) for op in operations] == [
        ("payment", 400, 600),
        ("deposit", 1000, 1000),
    ]
    assert not settings_file(settings, "billing").exists()


def test_a_decision_asked_for_again_is_answered_from_one_read(make_caller, open_store, monkeypatch) -> None:
    store = open_store(BillingStore)
    billing = make_caller(create_app, "billing", store=store)
    user = str(uuid.uuid4())
    billing.calling_as("auth")("PUT", f"/wallets/{user}", json={"currency": "RUB"})
    billing("POST", f"/wallets/{user}/deposits", json={"amount": 1000})
    amounts = {str(uuid.uuid4()): 400, str(uuid.uuid4()): 5000}
    first = {order: pay(billing, user, amount, order) for order, amount in amounts.items()}
    assert [answer.status_code for answer in first.values()] == [201, 406]
    statements: list[str] = []
    execute_sql = store.db.execute_sql

    def recorded(sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql.split(None, 1)[0].upper())
        return execute_sql(sql, *args, **kwargs)

    def queries() -> list[str]:
        made = [kind for kind in statements if kind in ("SELECT", "INSERT", "UPDATE", "DELETE")]
        statements.clear()
        return made

    monkeypatch.setattr(store.db, "execute_sql", recorded)
    for order, amount in amounts.items():
        again = pay(billing, user, amount, order)
        assert again.status_code in (200, 406) and again.json == first[order].json
        assert queries() == ["SELECT"]
        read = billing("GET", f"/payments/{order}")
        assert read.status_code == 200 and read.json["order_id"] == order
        assert queries() == ["SELECT"]
