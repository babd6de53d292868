"""The wallet's books under any sequence of deposits, payments, retried payments and
abandons: Billing's app through ``falcon.testing`` on a fresh SQLite file, checked
against a model after every step.

What must hold: the balance is deposits minus debits and never negative, an order is
debited at most once whatever is sent again, the first decision for an order stands
(a retry gets it back, an abandon cannot undo a debit, a payment after an abandon
cannot debit), and keyed deposits count once.
"""

from __future__ import annotations

import secrets
import tempfile
import uuid
from collections import Counter
from typing import Any

import attrs
import falcon.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from services.billing.app import create_app
from services.billing.logic import ABANDONED, INSUFFICIENT_FUNDS, Refusal
from services.common.config import Settings
from services.common.trust import ServiceTokens

USERS = 2
amounts = st.integers(min_value=1, max_value=3_000)
users = st.integers(min_value=0, max_value=USERS - 1)


@attrs.define
class Decision:
    """The model's record of Billing's one decision for an order."""

    user: int
    amount: int
    debited: bool
    refusal: Refusal | None
    payment_id: str | None = None


class WalletBooks(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        config = Settings(
            data_dir=self.folder.name,
            service_secret=secrets.token_hex(32),
            password_hash_memory=1024,
            password_hash_time=1,
        )
        self.client = falcon.testing.TestClient(create_app(config))
        self.as_gateway = ServiceTokens(config.secret(), "gateway").header("billing")
        self.users = [str(uuid.uuid4()) for _ in range(USERS)]
        self.balance = [0] * USERS
        self.deposit_keys: dict[tuple[int, str], int] = {}
        self.decisions: dict[str, Decision] = {}
        as_auth = ServiceTokens(config.secret(), "auth").header("billing")
        for user in self.users:
            opened = self.client.simulate_put(
                f"/wallets/{user}", json={"currency": "RUB"}, headers={"Authorization": as_auth}
            )
            assert opened.status_code == 201

    def teardown(self) -> None:
        self.folder.cleanup()

    def call(self, method: str, path: str, body: Any = None) -> falcon.testing.Result:
        return self.client.simulate_request(method, path, json=body, headers={"Authorization": self.as_gateway})

    def payment_body(self, order_id: str, user: int, amount: int) -> dict[str, Any]:
        return {"order_id": order_id, "user_id": self.users[user], "amount": amount, "currency": "RUB"}

    def abandon_body(self, user: int, amount: int) -> dict[str, Any]:
        """The terms of a payment that will not happen; the order is in the path."""
        return {"user_id": self.users[user], "amount": amount, "currency": "RUB"}

    # -- deposits ---------------------------------------------------------------------------

    @rule(user=users, amount=amounts, key=st.none() | st.sampled_from(["a", "b", "c"]))
    def deposit(self, user: int, amount: int, key: str | None) -> None:
        body: dict[str, Any] = {"amount": amount, "idempotency_key": key}
        result = self.call("POST", f"/wallets/{self.users[user]}/deposits", body)
        earlier = self.deposit_keys.get((user, key)) if key else None
        if earlier is not None and earlier != amount:
            assert result.status_code == 409 and result.json["code"] == "idempotency_key_reused"
        elif earlier is not None:
            assert result.status_code == 200
        else:
            assert result.status_code == 201, result.text
            self.balance[user] += amount
            if key:
                self.deposit_keys[(user, key)] = amount

    # -- payments ---------------------------------------------------------------------------

    def expect_decision(self, result: falcon.testing.Result, decision: Decision, first: bool) -> None:
        if decision.debited:
            assert result.status_code == (201 if first else 200), result.text
            assert result.json["outcome"] == "debited" and result.json["operation"]["amount"] == decision.amount
            if decision.payment_id is None:
                decision.payment_id = result.json["id"]
            assert result.json["id"] == decision.payment_id
        else:
            assert result.status_code == 406, result.text
            assert decision.refusal is not None
            assert (result.json["code"], result.json["title"]) == (decision.refusal.code, decision.refusal.text)

    @rule(target=orders, user=users, amount=amounts)
    def pay(self, user: int, amount: int) -> str:
        order_id = str(uuid.uuid4())
        result = self.call("POST", "/payments", self.payment_body(order_id, user, amount))
        covered = self.balance[user] >= amount
        decision = Decision(user, amount, covered, None if covered else INSUFFICIENT_FUNDS)
        self.expect_decision(result, decision, first=True)
        self.decisions[order_id] = decision
        if covered:
            self.balance[user] -= amount
        return order_id

    @rule(order_id=orders)
    def pay_again(self, order_id: str) -> None:
        """A retry (the gateway's, the client's): the first decision, never a second debit,
        even if the balance has changed since."""
        decision = self.decisions[order_id]
        result = self.call("POST", "/payments", self.payment_body(order_id, decision.user, decision.amount))
        self.expect_decision(result, decision, first=False)

    @rule(order_id=orders, amount=amounts)
    def pay_again_with_other_terms(self, order_id: str, amount: int) -> None:
        decision = self.decisions[order_id]
        if amount == decision.amount:
            return
        result = self.call("POST", "/payments", self.payment_body(order_id, decision.user, amount))
        assert result.status_code == 409 and result.json["code"] == "payment_conflict"

    # -- abandons (recovery) ----------------------------------------------------------------

    @rule(order_id=orders)
    def abandon_decided(self, order_id: str) -> None:
        """Recovery asking about an order that was decided: the decision stands."""
        decision = self.decisions[order_id]
        body = self.abandon_body(decision.user, decision.amount)
        result = self.call("POST", f"/payments/{order_id}/abandon", body)
        assert result.status_code == 200
        assert result.json["outcome"] == ("debited" if decision.debited else "declined")
        refusal = decision.refusal
        assert (result.json["reason_code"], result.json["reason"]) == (
            (refusal.code, refusal.text) if refusal else (None, None)
        )

    @rule(target=orders, user=users, amount=amounts)
    def abandon_undecided(self, user: int, amount: int) -> str:
        """Recovery closing an order that never reached payment: a decline, so a late
        payment request for it cannot debit."""
        order_id = str(uuid.uuid4())
        result = self.call("POST", f"/payments/{order_id}/abandon", self.abandon_body(user, amount))
        assert result.status_code == 201 and result.json["outcome"] == "declined"
        assert result.json["reason"] == ABANDONED.text and result.json["operation"] is None
        assert result.json["reason_code"] == "payment_abandoned"
        self.decisions[order_id] = Decision(user, amount, False, ABANDONED)
        return order_id

    # -- the books ----------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        for index, user in enumerate(self.users):
            wallet = self.call("GET", f"/wallets/{user}").json
            operations = self.call("GET", f"/wallets/{user}/operations?limit=100").json["items"]
            deposits = sum(op["amount"] for op in operations if op["kind"] == "deposit")
            debits = [op for op in operations if op["kind"] == "payment"]
            assert wallet["balance"] == self.balance[index] == deposits - sum(op["amount"] for op in debits) >= 0
            per_order = Counter(op["order_id"] for op in debits)
            assert all(count == 1 for count in per_order.values()), per_order
            debited = {o for o, d in self.decisions.items() if d.debited and d.user == index}
            assert set(per_order) == debited
            # Newest first: each balance_after is the one before it plus or minus its amount.
            running = 0
            for op in reversed(operations):
                running += op["amount"] if op["kind"] == "deposit" else -op["amount"]
                assert op["balance_after"] == running


def test_wallet_books_hold_under_any_sequence_of_deposits_payments_retries_and_abandons() -> None:
    run_state_machine_as_test(
        WalletBooks,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
