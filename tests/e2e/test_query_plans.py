"""Every statement an order runs, and every list, reads through an index on a large
database: no full scan of a large table, and no sort for a newest-first list.

The databases are prefilled (``orchestrator.tools.prefill``) with tens of thousands of orders,
and the stores run each statement for real, inside a transaction rolled back after; the
statements they sent are recorded and explained (``EXPLAIN QUERY PLAN`` on SQLite,
``EXPLAIN`` on PostgreSQL, the database the run names: ``SYNCORDERS_TEST_POSTGRES``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from contracts import vocabulary as words
from contracts.operations import MAX_PAGE, Page
from orchestrator.tools.prefill import Plan, Prefilled, prefill
from services.auth.store import AuthStore
from services.billing.models import Payment
from services.billing.store import BillingStore
from services.common.clock import utcnow
from services.common.config import Settings
from services.common.db import Store, is_sqlite
from services.notifications.models import Letter
from services.notifications.store import LetterStore
from services.orders.models import Order
from services.orders.store import OrderStore, Selection
from services.profiles.store import ProfileStore
from tests.harness import stack_settings

# The heaviest customer has 1 % of the orders (as 10,000 of a million would have).
PLAN = Plan(customers=2000, orders=40_000, pending=20, heavy=400, password="prefilled password", seed=7)
DEEP = 200
DATA = {"orders": OrderStore, "billing": BillingStore, "notifications": LetterStore, "profiles": ProfileStore}


@attrs.frozen
class Known:
    """Rows of the prefilled data the statements are run on."""

    user_id: str
    login: str
    order: Order
    deep_order_id: str
    letter: Letter
    operation_id: str


@pytest.fixture(scope="module")
def prefilled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Prefilled]:
    settings = stack_settings(tmp_path_factory.mktemp("plans"))
    return settings, prefill(settings, PLAN)


@pytest.fixture(scope="module")
def stores(prefilled: tuple[Settings, Prefilled]) -> Iterator[dict[str, Store]]:
    settings, _done = prefilled
    opened: dict[str, Store] = {name: kind.open(settings, max_connections=1) for name, kind in DATA.items()}
    opened["auth"] = AuthStore.open(settings, max_connections=1)
    yield opened
    for store in opened.values():
        store.close()


@pytest.fixture(scope="module")
def known(stores: dict[str, Store], prefilled: tuple[Settings, Prefilled]) -> Known:
    heavy = prefilled[1].customers[0]
    orders, letters, billing = stores["orders"], stores["notifications"], stores["billing"]
    with orders.connection():
        page, _ = orders.listing(Selection(user_id=heavy.user_id), Page(limit=20, offset=DEEP))
    with letters.connection():
        [letter], _ = letters.listing(heavy.user_id, None, Page(limit=1))
    with billing.connection():
        operations, _ = billing.operations(heavy.user_id, Page(limit=1, offset=DEEP))
    return Known(heavy.user_id, heavy.login, page[0], page[-1].id, letter, operations[0].id)


@contextlib.contextmanager
def recording(store: Store) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """The statements the store sends while in the block, with their parameters."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    db = store.db
    execute = db.execute_sql

    def record(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if sql.lstrip().split(None, 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            sent.append((sql, tuple(params or ())))
        return execute(sql, params, *args, **kwargs)

    db.execute_sql = record  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del db.execute_sql


@attrs.frozen
class Step:
    """One plan line: what the database does for one part of a statement."""

    action: str  # SQLite's detail text, or PostgreSQL's node type
    table: str | None = None
    index: str | None = None
    searched: bool = False  # the index is searched by a condition, not read whole
    rows: float | None = None  # PostgreSQL's estimate of the rows out of it


def explain(store: Store, sql: str, params: tuple[Any, ...]) -> list[Step]:
    db = store.db
    if is_sqlite(db):
        return [_sqlite_step(row[3]) for row in db.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]
    [[document]] = db.execute_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchall()
    if isinstance(document, str):
        document = json.loads(document)
    steps: list[Step] = []
    pending = [document[0]["Plan"]]
    while pending:
        node = pending.pop()
        pending.extend(node.get("Plans", []))
        searched = "Index Cond" in node
        table, index = node.get("Relation Name"), node.get("Index Name")
        steps.append(Step(node["Node Type"], table, index, searched, node.get("Plan Rows")))
    return steps


def _sqlite_step(detail: str) -> Step:
    words_ = detail.split()
    table = words_[1] if words_[0] in {"SCAN", "SEARCH"} else None
    index = None
    if " USING " in detail:
        after = detail.split(" USING ", 1)[1]
        index = "PRIMARY KEY" if "PRIMARY KEY" in after.split(" (")[0] else after.split()[-1 if "(" not in after else 2]
        if after.startswith(("INDEX ", "COVERING INDEX ")):
            index = after.split("INDEX ", 1)[1].split()[0]
    return Step(detail, table, index, searched=words_[0] == "SEARCH")


SORTS = ("USE TEMP B-TREE", "Sort", "Incremental Sort")
# PostgreSQL sorts a customer with few rows rather than read them in order: all of
# them, fewer than one page's most, is not a large set.
SMALL_SORT = MAX_PAGE


def problems(steps: list[Step], sort_allowed: bool) -> list[str]:
    """Every table here grows with the customers or their orders: none may be read
    whole, nor any of its indexes, nor more than a few rows sorted when not allowed."""
    found = []
    for step in steps:
        full_scan = step.action.startswith("SCAN ") or step.action == "Seq Scan"
        whole_index = step.index is not None and not step.searched and step.action != "Bitmap Heap Scan"
        if full_scan or whole_index:
            found.append(f"reads the whole of {step.table}: {step.action}")
        small = step.rows is not None and step.rows <= SMALL_SORT
        if not sort_allowed and step.action.startswith(SORTS) and not small:
            found.append(f"sorts: {step.action}")
    return found


@attrs.frozen
class Case:
    name: str
    service: str
    run: Callable[[Any, Known], object]
    # The indexes that may serve it (SQLite's and PostgreSQL's names), one of which must.
    indexes: tuple[str, ...]
    # Only recovery's scans sort: the orders in their time range, never the table.
    sort_allowed: bool = False


def _now() -> datetime.datetime:
    return utcnow()


def _new_order(user_id: str) -> Order:
    now = _now()
    return Order(
        id=str(uuid.uuid4()),
        user_id=user_id,
        items="[]",
        total=100,
        currency="RUB",
        status=words.PENDING,
        idempotency_key=f"plan-{uuid.uuid4()}",
        fingerprint="0" * 64,
        run_id="run",
        run_expires=now,
        created_at=now,
        updated_at=now,
    )


def _new_payment(known: Known) -> Payment:
    return Payment(
        id=str(uuid.uuid4()),
        order_id=str(uuid.uuid4()),
        user_id=known.user_id,
        amount=100,
        currency="RUB",
        outcome=words.DECLINED,
        reason_code=words.INSUFFICIENT_FUNDS,
        reason="Insufficient funds",
        operation=None,
        created_at=_now(),
    )


def _new_letter(known: Known) -> Letter:
    return Letter(
        id=str(uuid.uuid4()),
        order_id=str(uuid.uuid4()),
        order_status=words.PAID,
        user_id=known.user_id,
        kind=words.HAPPY,
        recipient="anna@example.com",
        subject="Paid",
        body="Thank you",
        delivery=words.STORED,
        created_at=_now(),
    )


def _recent(hours: float) -> datetime.datetime:
    return _now() - datetime.timedelta(hours=hours)


ORDER_BY_ID = ("order_id",)
CASES = (
    # The order flow's statements.
    Case("create an order", "orders", lambda s, k: s.add_order(_new_order(k.user_id)), ()),
    Case(
        "the order a key made",
        "orders",
        lambda s, k: s.by_key(k.user_id, k.order.idempotency_key),
        ("order_user_id_idempotency_key",),
    ),
    Case("read an order", "orders", lambda s, k: s.order(k.order.id), ORDER_BY_ID),
    Case("claim an order", "orders", lambda s, k: s.claim(k.order.id, "pending", "run", _now(), _now()), ORDER_BY_ID),
    Case(
        "finish an order",
        "orders",
        lambda s, k: s.finish(k.order.id, "pending", "paid", None, None, _now()),
        ORDER_BY_ID,
    ),
    Case("release an order", "orders", lambda s, k: s.release(k.order.id, "run"), ORDER_BY_ID),
    Case(
        "the payment decision",
        "billing",
        lambda s, k: s.decision(k.order.id),
        ("payment_order_id", "operation_id"),
    ),
    Case("record a decision", "billing", lambda s, k: s.decide(_new_payment(k)), ()),
    Case(
        "debit a wallet",
        "billing",
        lambda s, k: s.debit(k.user_id, 100, "RUB", str(uuid.uuid4()), _now()),
        ("sqlite_autoindex_wallet_1", "wallet_pkey"),
    ),
    Case(
        "a deposit under a key",
        "billing",
        lambda s, k: (s.keyed_operation(k.user_id, "key"), s.credit(k.user_id, 100, "RUB", "key", _now())),
        ("operation_user_id_idempotency_key",),
    ),
    Case("read a wallet", "billing", lambda s, k: s.wallet(k.user_id), ("sqlite_autoindex_wallet_1", "wallet_pkey")),
    Case(
        "the letter of an order",
        "notifications",
        lambda s, k: s.for_order(k.letter.order_id, k.letter.order_status),
        ("letter_order_id_order_status",),
    ),
    Case("store a letter", "notifications", lambda s, k: s.add_letter(_new_letter(k)), ()),
    Case("read a letter", "notifications", lambda s, k: s.letter(k.letter.id), ("letter_id",)),
    Case(
        "read a profile", "profiles", lambda s, k: s.profile(k.user_id), ("sqlite_autoindex_profile_1", "profile_pkey")
    ),
    Case("find a login", "auth", lambda s, k: s.user(k.login), ("user_login",)),
    # A customer's lists, newest first: first page, a deep page by cursor, by offset.
    Case(
        "a customer's orders",
        "orders",
        lambda s, k: s.listing(Selection(user_id=k.user_id), Page(20)),
        ("order_user_id_seq",),
    ),
    Case(
        "a customer's orders after a cursor",
        "orders",
        lambda s, k: s.listing(Selection(user_id=k.user_id), Page(20, before=k.deep_order_id)),
        ("order_user_id_seq",),
    ),
    Case(
        "a customer's orders at an offset",
        "orders",
        lambda s, k: s.listing(Selection(user_id=k.user_id), Page(20, offset=DEEP)),
        ("order_user_id_seq",),
    ),
    Case(
        "a customer's wallet operations",
        "billing",
        lambda s, k: s.operations(k.user_id, Page(20, before=k.operation_id)),
        ("operation_user_id_seq",),
    ),
    Case(
        "a customer's letters",
        "notifications",
        lambda s, k: s.listing(k.user_id, None, Page(20, before=k.letter.id)),
        ("letter_user_id_seq",),
    ),
    # An order's letters: at most one per status, so their sort is of two rows at most.
    Case(
        "an order's letters",
        "notifications",
        lambda s, k: s.listing(None, k.order.id, Page(20)),
        ("letter_order_id_order_status",),
        sort_allowed=True,
    ),
    # Recovery's scans: pending orders idle for a minute, final orders changed in a day.
    Case(
        "recovery's pending orders",
        "orders",
        lambda s, k: s.listing(Selection(status="pending", updated_before=_recent(1 / 60)), Page(100)),
        ("order_status_updated_at",),
        sort_allowed=True,
    ),
    Case(
        "recovery's final orders",
        "orders",
        lambda s, k: s.listing(
            Selection(status="paid", updated_before=_recent(1 / 60), updated_after=_recent(24)),
            Page(100, before=k.order.id),
        ),
        ("order_status_updated_at",),
        sort_allowed=True,
    ),
)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_hot_statement_reads_through_an_index_and_newest_first_lists_do_not_sort(
    case: Case, stores: dict[str, Store], known: Known
) -> None:
    store = stores[case.service]
    with store.connection():
        with recording(store) as sent, store.transaction() as transaction:
            case.run(store, known)
            transaction.rollback()
        assert sent, "the store sent no statement"
        plans = {sql: explain(store, sql, params) for sql, params in sent}
    shown = "\n".join(f"{sql}\n  " + "\n  ".join(map(str, steps)) for sql, steps in plans.items())
    for steps in plans.values():
        assert problems(steps, case.sort_allowed) == [], shown
    if case.indexes:
        used = {step.index for steps in plans.values() for step in steps}
        assert used & set(case.indexes), f"none of {case.indexes} used:\n{shown}"
