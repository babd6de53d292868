"""What "nothing lost, nothing charged twice" means, checked on the services' own data.

Reads every service's database straight from storage (the SQLite files or the
PostgreSQL databases a stack's :class:`Settings` name), never through the services, so
the check cannot be fooled by an API that hides a row. :func:`problems` returns the list
of broken invariants; :func:`assert_invariants` fails a test with all of them at once;
:func:`run_recovery` runs the operator's recovery command against a stack.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import attrs
import peewee

from orchestrator.tools.supervisor import Stack
from services.auth.models import MODELS as AUTH_MODELS
from services.auth.models import User
from services.billing.models import MODELS as BILLING_MODELS
from services.billing.models import Operation, Payment, Wallet
from services.common.config import Settings
from services.common.db import open_database
from services.notifications.models import MODELS as NOTIFICATION_MODELS
from services.notifications.models import Letter
from services.orders.models import MODELS as ORDER_MODELS
from services.orders.models import Order
from services.profiles.models import MODELS as PROFILE_MODELS
from services.profiles.models import Profile


@attrs.frozen
class OrderRow:
    id: str
    user_id: str
    total: int
    status: str
    payment_id: str | None


@attrs.frozen
class OperationRow:
    id: str
    user_id: str
    kind: str
    amount: int
    balance_after: int
    order_id: str | None


@attrs.frozen
class PaymentRow:
    id: str
    order_id: str
    outcome: str
    amount: int
    operation_id: str | None


@attrs.frozen
class LetterRow:
    id: str
    order_id: str
    order_status: str
    kind: str
    delivery: str


@attrs.frozen
class Snapshot:
    """Every row that matters to the invariants, from all services (read when no
    request is under way, so the five reads agree)."""

    orders: list[OrderRow]
    wallets: dict[str, int]
    # In the order they were written (by sequence), for the running-balance check.
    operations: list[OperationRow]
    payments: dict[str, PaymentRow]
    letters: list[LetterRow]
    users: dict[str, bool]
    profiles: set[str]

    def orders_with(self, status: str) -> list[OrderRow]:
        return [order for order in self.orders if order.status == status]

    def debits(self) -> list[OperationRow]:
        return [op for op in self.operations if op.kind == "payment"]

    def letters_for(self, order_id: str) -> list[LetterRow]:
        return [letter for letter in self.letters if letter.order_id == order_id]


@contextlib.contextmanager
def _reading(settings: Settings, service: str, models: Sequence[type[peewee.Model]]) -> Iterator[None]:
    """The service's models bound to its database for the duration, then unbound."""
    db = open_database(settings.database(service), max_connections=1)
    try:
        with db.bind_ctx(models, bind_refs=False, bind_backrefs=False), db.connection_context():
            yield
    finally:
        db.close_all()


def snapshot(settings: Settings) -> Snapshot:
    """Read all five databases; the services may keep running."""
    with _reading(settings, "orders", ORDER_MODELS):
        orders = [
            OrderRow(row.id, row.user_id, row.total, row.status, row.payment_id)
            for row in Order.select().order_by(Order.seq)
        ]
    with _reading(settings, "billing", BILLING_MODELS):
        wallets = {row.user_id: row.balance for row in Wallet.select()}
        operations = [
            OperationRow(row.id, row.user_id, row.kind, row.amount, row.balance_after, row.order_id)
            for row in Operation.select().order_by(Operation.seq)
        ]
        payments = {
            row.order_id: PaymentRow(row.id, row.order_id, row.outcome, row.amount, row.operation_id)
            for row in Payment.select()
        }
    with _reading(settings, "notifications", NOTIFICATION_MODELS):
        letters = [
            LetterRow(row.id, row.order_id, row.order_status, row.kind, row.delivery)
            for row in Letter.select().order_by(Letter.seq)
        ]
    with _reading(settings, "auth", AUTH_MODELS):
        users = {row.id: row.complete for row in User.select()}
    with _reading(settings, "profiles", PROFILE_MODELS):
        profiles = {row.user_id for row in Profile.select()}
    return Snapshot(orders, wallets, operations, payments, letters, users, profiles)


_LETTER_KIND = {"paid": "happy", "cancelled": "sad"}


def problems(state: Snapshot, *, delivered: bool = False) -> list[str]:
    """Every broken invariant, one line each; empty when all hold. ``delivered`` also
    asks that every letter reached the SMTP server."""
    found: list[str] = []
    debits_by_order: dict[str, list[OperationRow]] = defaultdict(list)
    for op in state.debits():
        debits_by_order[op.order_id or "<none>"].append(op)
    letters_by_order: dict[str, list[LetterRow]] = defaultdict(list)
    for letter in state.letters:
        letters_by_order[letter.order_id].append(letter)
    known_orders = {order.id: order for order in state.orders}

    for order in state.orders:
        debits = debits_by_order.get(order.id, [])
        letters = letters_by_order.get(order.id, [])
        payment = state.payments.get(order.id)
        if order.status not in _LETTER_KIND:
            found.append(f"order {order.id} is {order.status}, not paid or cancelled")
            continue
        if order.status == "paid":
            if len(debits) != 1 or debits[0].amount != order.total:
                found.append(f"paid order {order.id} (total {order.total}) has debits {[d.amount for d in debits]}")
            if payment is None or payment.outcome != "debited" or payment.id != order.payment_id:
                found.append(f"paid order {order.id} does not point at Billing's debited payment: {payment}")
            elif debits and payment.operation_id != debits[0].id:
                found.append(f"paid order {order.id}: the payment names another operation than its debit")
        elif debits:
            found.append(f"cancelled order {order.id} has debits {[d.amount for d in debits]}")
        elif payment is not None and payment.outcome == "debited":
            found.append(f"cancelled order {order.id} has a debited payment decision")
        kinds = [(letter.kind, letter.order_status) for letter in letters]
        if kinds != [(_LETTER_KIND[order.status], order.status)]:
            found.append(f"{order.status} order {order.id} has letters {kinds}")
        if delivered and any(letter.delivery != "sent" for letter in letters):
            found.append(f"order {order.id} has an undelivered letter: {[x.delivery for x in letters]}")

    for order_id, debits in debits_by_order.items():
        if order_id not in known_orders:
            found.append(f"debits {[d.amount for d in debits]} for order {order_id}, which Orders does not know")
    for order_id in letters_by_order.keys() - known_orders.keys():
        found.append(f"letters for order {order_id}, which Orders does not know")

    found.extend(_wallet_problems(state))
    return found


def _wallet_problems(state: Snapshot) -> list[str]:
    """Balance = deposits − debits ≥ 0, and each operation's ``balance_after`` is the
    running balance at that point: no write was lost or applied twice."""
    found: list[str] = []
    running: Counter[str] = Counter()
    for op in state.operations:
        running[op.user_id] += op.amount if op.kind == "deposit" else -op.amount
        if op.balance_after != running[op.user_id]:
            found.append(
                f"wallet {op.user_id}: operation {op.id} says balance {op.balance_after}, "
                f"the operations before it add up to {running[op.user_id]}"
            )
    for user_id, balance in state.wallets.items():
        if balance < 0:
            found.append(f"wallet {user_id} is negative: {balance}")
        if balance != running[user_id]:
            found.append(f"wallet {user_id}: balance {balance}, deposits minus debits {running[user_id]}")
    for user_id in running.keys() - state.wallets.keys():
        found.append(f"operations for {user_id}, who has no wallet")
    return found


def assert_invariants(settings: Settings, *, delivered: bool = False) -> Snapshot:
    """Check all invariants on the stack's databases; return what was read."""
    state = snapshot(settings)
    broken = problems(state, delivered=delivered)
    assert not broken, "broken invariants:\n" + "\n".join(broken)
    return state


@attrs.frozen
class RecoveryReport:
    """What one run of ``syncorders recover`` said it did."""

    pending_found: int
    paid: int
    cancelled: int
    letters_checked: int
    letters_sent: int
    failures: int
    exit_code: int
    output: str

    def changed_nothing(self) -> bool:
        return (self.pending_found, self.paid, self.cancelled, self.letters_sent, self.failures) == (0, 0, 0, 0, 0)


_REPORT = re.compile(
    r"pending orders found: (\d+) \(now paid: (\d+), cancelled: (\d+)\)\n"
    r"final orders checked for their letter: (\d+), letters sent now: (\d+)\n"
    r"failures: (\d+)"
)


def run_recovery(stack: Stack, older_than: float = 0, letters_since: float = 24) -> RecoveryReport:
    """Run the recovery command as an operator would: its own process, the stack's
    configuration in its environment."""
    command = [sys.executable, "-m", "orchestrator.tools.cli", "recover"]
    command += ["--older-than", str(older_than), "--letters-since", str(letters_since)]
    done = subprocess.run(command, env=stack.env(), capture_output=True, text=True, timeout=120, check=False)
    found = _REPORT.search(done.stdout)
    assert found, f"no report from recovery (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    counts = [int(value) for value in found.groups()]
    return RecoveryReport(*counts, exit_code=done.returncode, output=done.stdout + done.stderr)
