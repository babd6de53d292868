"""``syncorders prefill``: a long history written straight into each service's database,
to see what a large database costs the order flow, the lists and recovery.

It writes what the order flow and registration would have written, without them (over
HTTP a million orders take hours): customers with their user (Auth), profile (Profiles)
and wallet with one deposit (Billing); orders spread evenly over past days, each paid
one with its debit and payment decision, each cancelled one with its decline
("Insufficient funds", as the flow records it), each final one with its letter; and a
few orders left ``pending`` long ago, half of them with their debit made (the flow
stopped at step 7) and half without a decision (stopped at step 5), so that
``syncorders recover`` has work. Balances add up: every operation's ``balance_after``
is the running balance, and a payment the balance does not cover is declined, so once
recovery has finished the pending orders, ``tests/invariants.py`` holds.

Rows go in batches, one transaction per database and batch: one prepared ``INSERT``
run for the whole batch (``executemany``) on SQLite, ``COPY`` on PostgreSQL. The
databases may already hold data; customers' logins carry a tag of the run. Every
prefilled customer has the same password (one Argon2id hash made once).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import random
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import peewee

from contracts import vocabulary as words
from services.auth.models import User
from services.auth.passwords import Cost, hash_password
from services.auth.store import AuthStore
from services.billing import store as billing_store
from services.billing.logic import INSUFFICIENT_FUNDS
from services.billing.models import Operation, Payment, Wallet
from services.billing.store import BillingStore
from services.common.clock import utcnow
from services.common.config import Settings
from services.common.db import Store, is_sqlite
from services.notifications import store as notifications_store
from services.notifications.logic import letter_text
from services.notifications.models import Letter
from services.notifications.store import LetterStore
from services.orders.logic import order_fingerprint
from services.orders.models import Order
from services.orders.store import OrderStore
from services.profiles.models import Profile
from services.profiles.store import ProfileStore

CURRENCY = "RUB"
# Each customer's one deposit covers a little more than the orders they are expected
# to pay for: some customers run short, and their last payments are declined.
DEPOSIT_MARGIN = 1.1
PRODUCTS = (
    ("Tea", 2500),
    ("Coffee beans", 3200),
    ("Samovar", 900_000),
    ("Honey", 1800),
    ("Gingerbread", 450),
    ("Teapot", 5600),
    ("Sugar", 300),
    ("Jam", 1200),
)
FIRST_NAMES = ("Anna", "Boris", "Vera", "Gleb", "Daria", "Egor", "Zoya", "Ivan", "Lidia", "Oleg")
LAST_NAMES = ("Karenina", "Petrov", "Orlova", "Sokolov", "Volkova", "Morozov")
# How long after its creation a prefilled order was finished.
FINISH_AFTER = datetime.timedelta(milliseconds=6)


@attrs.frozen
class Plan:
    """What to write. ``heavy`` orders go to the first customer (one with a long
    history, for deep pages); the rest are spread evenly over the others."""

    customers: int
    orders: int
    password: str
    pending: int = 100
    heavy: int = 0
    cancelled_share: float = 0.15
    days: float = 365.0
    # The newest order's time; by default an hour before the prefill.
    end: datetime.datetime | None = None
    batch: int = 5000
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.customers < 1 or self.orders < 0 or self.batch < 1:
            raise ValueError("customers and the batch size must be at least 1, orders at least 0")
        if not 0 <= self.pending <= self.orders or self.heavy > self.orders:
            raise ValueError("pending and heavy orders must be part of the orders")
        if self.heavy and self.customers < 2 and self.heavy != self.orders:
            raise ValueError("with one customer, every order is the heavy customer's")


@attrs.frozen
class Customer:
    user_id: str
    login: str
    email: str
    first_name: str
    last_name: str


@attrs.define
class Prefilled:
    """What was written: the customers (the heavy one first), the rows per service and
    the time each service's writes took."""

    customers: list[Customer]
    password: str
    rows: dict[str, int]
    seconds: dict[str, float]
    elapsed: float
    pending: int

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def lines(self) -> list[str]:
        lines = [
            f"prefilled {self.total_rows:,} rows in {self.elapsed:.1f} s ({self.total_rows / self.elapsed:,.0f} rows/s)"
        ]
        for service, count in self.rows.items():
            seconds = self.seconds[service]
            rate = count / seconds if seconds else 0.0
            lines.append(f"  {service}: {count:,} rows, {seconds:.1f} s writing ({rate:,.0f} rows/s)")
        lines.append(f"  pending orders left for recovery: {self.pending}")
        if self.customers:
            lines.append(f"  customers: {self.customers[0].login} (the most orders) and {len(self.customers) - 1} more")
        return lines


class Writer:
    """Batches of rows into one service's database: each batch in one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        self.postgres = not is_sqlite(self.db)
        self.rows = 0
        self.seconds = 0.0

    @contextlib.contextmanager
    def connected(self) -> Iterator[Writer]:
        with self.store.connection():
            if not self.postgres:
                # This connection alone writes, and a crash mid-prefill leaves a test
                # database to make again: no syncing, a large page cache.
                self.db.execute_sql("PRAGMA synchronous = OFF")
                self.db.execute_sql("PRAGMA cache_size = -262144")
            yield self

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        started = time.perf_counter()
        with self.db.atomic():
            yield
        self.seconds += time.perf_counter() - started

    def write(self, model: type[peewee.Model], fields: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        table = model._meta.table_name
        names = [model._meta.fields[name].column_name for name in fields]
        cursor = self.db.cursor()
        if self.postgres:
            columns = ", ".join(f'"{name}"' for name in names)
            cursor.copy_expert(f'COPY "{table}" ({columns}) FROM STDIN', _copy_text(rows))
        else:
            columns = ", ".join(f'"{name}"' for name in names)
            marks = ", ".join("?" * len(names))
            cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', rows)
        self.rows += len(rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ")
    if isinstance(value, int):
        return str(value)
    return str(value).translate(_COPY_ESCAPES)


def _copy_text(rows: list[tuple[Any, ...]]) -> io.StringIO:
    """Rows in ``COPY``'s text format: tab-separated, ``\\N`` for NULL."""
    return io.StringIO("".join("\t".join(map(_copy_value, row)) + "\n" for row in rows))


ORDER_FIELDS = (
    "id",
    "user_id",
    "items",
    "total",
    "currency",
    "status",
    "reason",
    "payment_id",
    "idempotency_key",
    "fingerprint",
    "run_id",
    "run_expires",
    "created_at",
    "updated_at",
)
# The columns each service's own store inserts, in its order: a prefilled row is the row
# the flow would have written.
OPERATION_FIELDS = billing_store.INSERT_OPERATION.fields
PAYMENT_FIELDS = billing_store.INSERT_PAYMENT.fields
LETTER_FIELDS = notifications_store.INSERT_LETTER.fields
USER_FIELDS = ("id", "login", "password_hash", "email", "first_name", "last_name", "complete", "created_at")
PROFILE_FIELDS = ("user_id", "email", "first_name", "last_name", "created_at", "updated_at")
WALLET_FIELDS = ("user_id", "currency", "balance", "created_at")


@attrs.frozen
class Basket:
    """One of the few baskets prefilled orders are made of, with what Orders derives."""

    items: str
    total: int
    fingerprint: str


def _baskets(rng: random.Random, count: int = 32) -> list[Basket]:
    baskets = []
    for _ in range(count):
        chosen = rng.sample(PRODUCTS[:2] + PRODUCTS[3:], rng.randint(1, 2))
        # A samovar now and then: the order the balance cannot always cover.
        if rng.random() < 0.1:
            chosen = [PRODUCTS[2]]
        items = [{"name": name, "quantity": rng.randint(1, 3), "price": price} for name, price in chosen]
        total = sum(item["quantity"] * item["price"] for item in items)
        baskets.append(Basket(json.dumps(items), total, order_fingerprint(items, CURRENCY)))
    return baskets


def _new_id() -> str:
    return str(uuid.uuid4())


@attrs.define
class _Batch:
    """One batch's rows, per table."""

    orders: list[tuple[Any, ...]] = attrs.Factory(list)
    operations: list[tuple[Any, ...]] = attrs.Factory(list)
    payments: list[tuple[Any, ...]] = attrs.Factory(list)
    letters: list[tuple[Any, ...]] = attrs.Factory(list)


class _History:
    """The orders, in the order they were placed, and what each left behind."""

    def __init__(self, plan: Plan, customers: list[Customer], rng: random.Random) -> None:
        self.plan = plan
        self.customers = customers
        self.rng = rng
        self.baskets = _baskets(rng)
        self.deposits = self._deposits()
        self.balances = list(self.deposits)
        self.end = plan.end or utcnow() - datetime.timedelta(hours=1)
        self.start = self.end - datetime.timedelta(days=plan.days)
        self.pending = set(rng.sample(range(plan.orders), plan.pending))
        self.pending_left = 0

    def _deposits(self) -> list[int]:
        plan = self.plan
        mean = sum(basket.total for basket in self.baskets) / len(self.baskets) * (1 - plan.cancelled_share)
        others = (plan.orders - plan.heavy) / max(1, len(self.customers) - (1 if plan.heavy else 0))
        expected = [float(plan.heavy) if plan.heavy and who == 0 else others for who in range(len(self.customers))]
        return [int(count * mean * DEPOSIT_MARGIN) + 100_000 for count in expected]

    def customer_of(self, number: int) -> int:
        plan = self.plan
        if plan.heavy and (len(self.customers) == 1 or self.rng.random() < plan.heavy / plan.orders):
            return 0
        first = 1 if plan.heavy else 0
        return self.rng.randrange(first, len(self.customers))

    def batch(self, numbers: range) -> _Batch:
        out = _Batch()
        span = (self.end - self.start).total_seconds()
        for number in numbers:
            placed = self.start + datetime.timedelta(seconds=span * number / max(1, self.plan.orders - 1))
            self._order(out, number, self.customer_of(number), placed)
        return out

    def _order(self, out: _Batch, number: int, who: int, placed: datetime.datetime) -> None:
        customer = self.customers[who]
        basket = self.baskets[self.rng.randrange(len(self.baskets))]
        order_id = _new_id()
        finished = placed + FINISH_AFTER
        wants_to_pay = self.rng.random() >= self.plan.cancelled_share
        covered = self.balances[who] >= basket.total
        status, reason, payment_id = words.PENDING, None, None
        if number in self.pending:
            self.pending_left += 1
            # Half stopped at step 7 (debited, not yet paid), half at step 5 (no decision).
            if number % 2 and covered:
                self._debit(out, customer, who, order_id, basket.total, placed)
            finished = placed
        elif wants_to_pay and covered:
            status, payment_id = words.PAID, self._debit(out, customer, who, order_id, basket.total, placed)
        else:
            status, reason = words.CANCELLED, INSUFFICIENT_FUNDS.text
            payment = (_new_id(), order_id, customer.user_id, basket.total, CURRENCY, words.DECLINED)
            out.payments.append((*payment, INSUFFICIENT_FUNDS.code, reason, None, placed))
        key = f"prefill-{number}"
        row = (order_id, customer.user_id, basket.items, basket.total, CURRENCY, status, reason, payment_id)
        out.orders.append((*row, key, basket.fingerprint, None, None, placed, finished))
        if status != words.PENDING:
            kind, subject, body = letter_text(status, order_id, basket.total, CURRENCY, reason, customer.first_name)
            letter = (_new_id(), order_id, status, customer.user_id, kind, customer.email, subject, body)
            out.letters.append((*letter, words.STORED, finished))

    def _debit(
        self, out: _Batch, customer: Customer, who: int, order_id: str, amount: int, at: datetime.datetime
    ) -> str:
        """The payment's operation and decision; the decision's ID."""
        self.balances[who] -= amount
        operation_id, payment_id = _new_id(), _new_id()
        out.operations.append(
            (operation_id, customer.user_id, words.PAYMENT, amount, CURRENCY, self.balances[who], order_id, None, at)
        )
        decision = (payment_id, order_id, customer.user_id, amount, CURRENCY, words.DEBITED, None, None)
        out.payments.append((*decision, operation_id, at))
        return payment_id


def _customers(plan: Plan, rng: random.Random) -> list[Customer]:
    tag = secrets.token_hex(3)
    customers = []
    for number in range(plan.customers):
        login = f"prefill-{tag}-{number:06d}"
        customers.append(
            Customer(_new_id(), login, f"{login}@example.com", rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        )
    return customers


STORES: tuple[type[Store], ...] = (AuthStore, ProfileStore, OrderStore, BillingStore, LetterStore)


def prefill(settings: Settings, plan: Plan, progress: Any = None) -> Prefilled:
    """Write ``plan``'s history into the databases ``settings`` name (tables made if
    missing). ``progress``, if given, is called with the number of orders written."""
    started = time.perf_counter()
    rng = random.Random(plan.seed)
    customers = _customers(plan, rng)
    history = _History(plan, customers, rng)
    stores = {store.service: store.open(settings, max_connections=1) for store in STORES}
    writers = {service: Writer(store) for service, store in stores.items()}
    try:
        with contextlib.ExitStack() as connections:
            for writer in writers.values():
                connections.enter_context(writer.connected())
            _write_customers(writers, customers, history.deposits, plan.password, settings, history.start)
            for first in range(0, plan.orders, plan.batch):
                rows = history.batch(range(first, min(first + plan.batch, plan.orders)))
                with writers["orders"].transaction():
                    writers["orders"].write(Order, ORDER_FIELDS, rows.orders)
                with writers["billing"].transaction():
                    writers["billing"].write(Operation, OPERATION_FIELDS, rows.operations)
                    writers["billing"].write(Payment, PAYMENT_FIELDS, rows.payments)
                with writers["notifications"].transaction():
                    writers["notifications"].write(Letter, LETTER_FIELDS, rows.letters)
                if progress is not None:
                    progress(min(first + plan.batch, plan.orders))
            wallets = [
                (customer.user_id, CURRENCY, balance, history.start)
                for customer, balance in zip(customers, history.balances, strict=True)
            ]
            with writers["billing"].transaction():
                writers["billing"].write(Wallet, WALLET_FIELDS, wallets)
            for writer in writers.values():
                _analyze(writer)
    finally:
        for store in stores.values():
            store.close()
    return Prefilled(
        customers=customers,
        password=plan.password,
        rows={service: writer.rows for service, writer in writers.items()},
        seconds={service: writer.seconds for service, writer in writers.items()},
        elapsed=time.perf_counter() - started,
        pending=history.pending_left,
    )


def _write_customers(
    writers: dict[str, Writer],
    customers: list[Customer],
    deposits: list[int],
    password: str,
    settings: Settings,
    at: datetime.datetime,
) -> None:
    """Users, profiles and each wallet's deposit (the wallets follow, with their balance)."""
    hashed = hash_password(password, Cost(settings.password_hash_memory, settings.password_hash_time).check())
    since = at - datetime.timedelta(days=1)
    for first in range(0, len(customers), 10_000):
        chunk = customers[first : first + 10_000]
        with writers["auth"].transaction():
            users = [(c.user_id, c.login, hashed, c.email, c.first_name, c.last_name, True, since) for c in chunk]
            writers["auth"].write(User, USER_FIELDS, users)
        with writers["profiles"].transaction():
            profiles = [(c.user_id, c.email, c.first_name, c.last_name, since, since) for c in chunk]
            writers["profiles"].write(Profile, PROFILE_FIELDS, profiles)
        with writers["billing"].transaction():
            operations = [
                (_new_id(), c.user_id, words.DEPOSIT, amount, CURRENCY, amount, None, None, since)
                for c, amount in zip(chunk, deposits[first : first + 10_000], strict=True)
            ]
            writers["billing"].write(Operation, OPERATION_FIELDS, operations)


def _analyze(writer: Writer) -> None:
    """Fresh statistics for PostgreSQL's planner, as its autovacuum would gather after
    such a load. SQLite's are left as the services leave them, none: without them its
    planner takes an equality on an indexed column as selective, which suits the
    statuses (see the README's Performance section)."""
    if writer.postgres:
        started = time.perf_counter()
        writer.db.execute_sql("ANALYZE")
        writer.seconds += time.perf_counter() - started


def plan_from(args: argparse.Namespace) -> Plan:
    heavy = min(5000, args.orders // 10) if args.heavy is None else args.heavy
    return Plan(
        customers=args.customers,
        orders=args.orders,
        password=args.password or secrets.token_urlsafe(12),
        pending=args.pending,
        heavy=heavy,
        days=args.days,
        batch=args.batch,
        seed=args.seed,
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    try:
        plan = plan_from(args)
    except ValueError as exc:
        raise SystemExit(f"prefill: {exc}") from None
    step = max(plan.batch, plan.orders // 20)

    def progress(done: int) -> None:
        if done % step < plan.batch or done == plan.orders:
            print(f"  {done:,} of {plan.orders:,} orders", flush=True)

    done = prefill(settings, plan, progress)
    print("\n".join(done.lines()))
    print(f"  every prefilled customer's password: {done.password}")
    return 0
