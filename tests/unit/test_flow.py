"""The order flow in-process, against fake Orders, Billing and Notifications: every
branch of every step, replays and recovery, in well under a second."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import pytest
from cattrs.errors import ClassValidationError

from contracts import billing
from contracts import vocabulary as words
from orchestrator import flow
from tests.fakes import SERVER_MS, FakeBilling, FakeNotifications, FakeOrders

CALLS = {"create_order": "orders", "pay": "billing", "update_status": "orders", "notify": "notifications"}
# The client operation each calling step uses.
OPERATION = {"create_order": "create_order", "pay": "pay", "update_status": "set_status", "notify": "send_letter"}
DOWNSTREAM = (words.UNAVAILABLE, words.TIMEOUT, words.SERVER_ERROR, words.BAD_RESPONSE)


@attrs.define
class World:
    orders: FakeOrders
    billing: FakeBilling
    notifications: FakeNotifications
    user_id: str

    @property
    def services(self) -> flow.Services:
        return flow.Services(orders=self.orders, billing=self.billing, notifications=self.notifications)  # type: ignore[arg-type]

    def fake(self, step: str) -> Any:
        return getattr(self, CALLS[step])

    def body(self, price: int = 1_000, quantity: int = 2, currency: str = "RUB") -> dict[str, Any]:
        items = [{"name": "Tea", "quantity": quantity, "price": price}]
        return {"user_id": self.user_id, "items": items, "currency": currency}

    def run(self, key: str | None = None, body: dict[str, Any] | None = None, **options: Any) -> flow.Run:
        return flow.Run(
            services=self.services,
            user_id=self.user_id,
            body=body or self.body(),
            idempotency_key=key or f"key-{uuid.uuid4()}",
            **options,
        )

    def order(self, key: str | None = None, body: dict[str, Any] | None = None) -> flow.Run:
        return flow.run_flow(self.run(key, body))


@pytest.fixture
def world() -> World:
    user_id = str(uuid.uuid4())
    world = World(FakeOrders(), FakeBilling(), FakeNotifications(), user_id)
    world.billing.give_wallet(user_id, "RUB", balance=10_000)
    world.notifications.emails[user_id] = "anna@example.com"
    return world


def test_a_covered_order_is_paid_debited_once_and_gets_the_happy_letter(world: World) -> None:
    run = world.order()

    assert run.result is not None and run.order is not None
    assert run.order.status == words.PAID and run.order.total == 2_000
    assert run.result.payment is not None and run.result.payment.amount == 2_000
    assert run.result.letter_id is not None and not run.result.letter_pending
    assert world.billing.wallets[world.user_id].balance == 8_000
    assert len(world.billing.debits(run.order.id)) == 1
    assert world.notifications.letters[(run.order.id, words.PAID)].kind == words.HAPPY
    assert not run.replayed and run.letter_created and run.missed == []
    calls = [name for fake in (world.orders, world.billing, world.notifications) for name, _ in fake.calls]
    assert sorted(calls) == ["create_order", "pay", "send_letter", "set_status"]


@pytest.mark.parametrize(
    ("balance", "currency", "code", "text"),
    [
        (500, "RUB", words.INSUFFICIENT_FUNDS, "Insufficient funds"),
        (10_000, "USD", words.CURRENCY_MISMATCH, "Currency mismatch: the wallet holds RUB"),
    ],
    ids=["insufficient-funds", "currency-mismatch"],
)
def test_a_declined_payment_cancels_the_order_with_its_reason_and_the_sad_letter(
    world: World, balance: int, currency: str, code: str, text: str
) -> None:
    world.billing.give_wallet(world.user_id, "RUB", balance=balance)

    run = world.order(body=world.body(currency=currency))

    assert run.order is not None and run.result is not None
    assert (run.order.status, run.order.reason) == (words.CANCELLED, text)
    assert run.decline == flow.Decline(code, text)
    assert run.result.payment is None and run.result.letter_id is not None
    assert world.billing.wallets[world.user_id].balance == balance
    assert world.notifications.letters[(run.order.id, words.CANCELLED)].kind == words.SAD


def test_a_customer_without_a_wallet_gets_a_cancelled_order(world: World) -> None:
    del world.billing.wallets[world.user_id]

    run = world.order()

    assert run.order is not None
    assert (run.order.status, run.order.reason) == (words.CANCELLED, "No wallet for this customer")
    assert run.decline is not None and run.decline.code == words.NO_WALLET


def test_an_order_in_another_name_is_forbidden_before_any_call(world: World) -> None:
    body = world.body() | {"user_id": str(uuid.uuid4())}

    with pytest.raises(flow.Forbidden):
        world.order(body=body)

    assert world.orders.calls == []


def test_a_malformed_order_is_a_validation_error_before_any_call(world: World) -> None:
    with pytest.raises(ClassValidationError):
        world.order(body={"user_id": world.user_id, "items": [], "currency": "RUB"})
    assert world.orders.calls == []


@pytest.mark.parametrize("reason", DOWNSTREAM)
@pytest.mark.parametrize("step_name", ["create_order", "pay", "update_status"])
@pytest.mark.parametrize("after", [False, True], ids=["before-the-work", "answer-lost"])
def test_a_call_that_fails_stops_the_flow_at_its_step_and_the_same_key_finishes_it(
    world: World, step_name: str, reason: str, after: bool
) -> None:
    world.fake(step_name).fail(OPERATION[step_name], reason, after=after)
    key = f"key-{uuid.uuid4()}"

    with pytest.raises(flow.FlowStopped) as stopped:
        world.order(key)

    step = flow.STEP_BY_NAME[step_name]
    assert stopped.value.step is step and stopped.value.failure.reason == reason
    # The order exists from the step after the create request on (or when the answer
    # to the create request was lost), and its ID is reported.
    created = step_name != "create_order" or after
    assert (stopped.value.order_id is not None) == (step_name != "create_order")
    assert len(world.orders.orders) == int(created)
    for order in world.orders.orders.values():
        # A lost run's claim is released (as the gateway's resource does) for the retry.
        world.orders.release_order(order.id, world.orders.claims.get(order.id, ""))

    again = world.order(key)

    assert again.order is not None and again.order.status == words.PAID
    assert len(world.orders.orders) == 1
    assert len(world.billing.debits(again.order.id)) == 1
    assert world.billing.wallets[world.user_id].balance == 8_000
    assert not again.letter_pending


@pytest.mark.parametrize("reason", DOWNSTREAM)
def test_a_failed_notification_leaves_a_final_order_with_its_letter_pending(world: World, reason: str) -> None:
    world.notifications.fail("send_letter", reason)

    run = world.order()

    assert run.order is not None and run.order.status == words.PAID
    assert run.result is not None and run.result.letter_pending and run.result.letter_id is None
    assert [(missed.step.name, missed.failure.reason) for missed in run.missed] == [("notify", reason)]


def test_a_refused_notification_is_a_pending_letter_too(world: World) -> None:
    del world.notifications.emails[world.user_id]

    run = world.order()

    assert run.result is not None and run.result.letter_pending
    assert [(missed.failure.reason, missed.failure.code) for missed in run.missed] == [
        (words.REFUSED, "profile_not_found")
    ]


@pytest.mark.parametrize(("status", "code"), [(409, "in_progress"), (422, "idempotency_key_reused")])
def test_orders_refusing_the_create_request_is_the_clients_to_fix(world: World, status: int, code: str) -> None:
    world.orders.fail("create_order", status=status, code=code)

    with pytest.raises(flow.FlowStopped) as stopped:
        world.order()

    failure, step = stopped.value.failure, stopped.value.step
    assert (failure.reason, failure.status, failure.code) == (words.REFUSED, status, code)
    assert failure.status in step.client_refusals


@pytest.mark.parametrize(("step_name", "status"), [("update_status", 409), ("pay", 409), ("update_status", 404)])
def test_a_later_refusal_is_the_step_failing_not_the_clients_to_fix(world: World, step_name: str, status: int) -> None:
    world.fake(step_name).fail(OPERATION[step_name], status=status, code="conflict")

    with pytest.raises(flow.FlowStopped) as stopped:
        world.order()

    assert stopped.value.step.name == step_name and stopped.value.failure.reason == words.REFUSED
    assert stopped.value.failure.status not in stopped.value.step.client_refusals


def test_the_same_key_again_replays_the_order_without_a_second_debit(world: World) -> None:
    key = f"key-{uuid.uuid4()}"
    first = world.order(key)

    again = world.order(key)

    assert again.replayed and again.order is not None and first.order is not None
    assert again.order.id == first.order.id and again.order.status == words.PAID
    assert again.result is not None and first.result is not None
    assert again.result.letter_id == first.result.letter_id and not again.letter_created
    assert world.billing.wallets[world.user_id].balance == 8_000
    assert len(world.billing.debits(first.order.id)) == 1


def test_a_replay_of_a_declined_order_stays_cancelled_after_a_deposit(world: World) -> None:
    world.billing.give_wallet(world.user_id, "RUB", balance=100)
    key = f"key-{uuid.uuid4()}"
    first = world.order(key)
    world.billing.give_wallet(world.user_id, "RUB", balance=100_000)

    again = world.order(key)

    assert first.order is not None and again.order is not None
    assert again.order.status == words.CANCELLED and again.order.id == first.order.id
    assert world.billing.debits(first.order.id) == []


def _left_pending(world: World, pay: bool) -> flow.Run:
    """A run a dead gateway left: stopped after the create request, or after the payment."""
    return flow.run_flow(world.run(), until="pay" if pay else "create_order")


@pytest.mark.parametrize(
    ("paid_before", "status", "reason_code"),
    [(False, words.CANCELLED, words.PAYMENT_ABANDONED), (True, words.PAID, None)],
    ids=["never-reached-payment", "debited-before-the-gateway-died"],
)
def test_recovery_finishes_a_pending_order_with_the_decision_that_stands(
    world: World, paid_before: bool, status: str, reason_code: str | None
) -> None:
    left = _left_pending(world, pay=paid_before)
    assert left.order is not None and left.order.status == words.PENDING

    run = flow.Run(
        services=world.services,
        user_id=world.user_id,
        body=None,
        idempotency_key="recovery",
        mode=flow.RECOVER,
        order=left.order,
    )
    flow.run_flow(run, start="pay")

    assert run.order is not None and run.order.status == status
    assert world.billing.payments[left.order.id].reason_code == reason_code
    assert [name for name, _ in world.billing.calls][-1] == "abandon_payment"
    assert len(world.billing.debits(left.order.id)) == int(paid_before)
    assert run.letter is not None and not run.letter_pending
    # A late payment request for the abandoned order cannot debit.
    order = left.order
    late = world.billing.pay(
        billing.PaymentRequest(order_id=order.id, user_id=order.user_id, amount=order.total, currency=order.currency)
    )
    assert late.status == (200 if paid_before else 406)
    assert len(world.billing.debits(order.id)) == int(paid_before)


def test_steps_run_from_start_through_until_by_name(world: World) -> None:
    run = flow.run_flow(world.run(), until="pay")

    assert run.order is not None and run.order.status == words.PENDING
    assert [step.name for step, _ms in run.timings if step.action] == ["authorize", "create_order", "pay"]
    assert run.result is None


def test_each_call_is_timed_less_its_callees_own_time_which_is_filed_under_the_step_it_performs(
    world: World,
) -> None:
    run = world.order()

    named = {step.name: ms for step, ms in run.durations.items()}
    for caller, callee in (
        ("create_order", "order_created"),
        ("pay", "payment_decided"),
        ("update_status", "status_updated"),
        ("notify", "letter_sent"),
    ):
        assert named[callee] == SERVER_MS
        assert flow.CALLEE[flow.STEP_BY_NAME[caller]] is flow.STEP_BY_NAME[callee]
    assert set(named) == {step.name for step in flow.FLOW if step.name not in ("receive",)}
    text = flow.timings_text(run.durations)
    assert text.startswith("2 authorize ") and ", 11 respond " in text


def test_observers_hear_every_step_and_its_outcome(world: World) -> None:
    heard: list[tuple[str, str]] = []
    world.notifications.fail("send_letter", words.TIMEOUT)

    flow.run_flow(world.run(), observe=lambda step, _ms, outcome: heard.append((step.name, outcome)))

    assert heard == [
        ("authorize", flow.OK),
        ("create_order", flow.OK),
        ("pay", flow.OK),
        ("update_status", flow.OK),
        ("notify", words.TIMEOUT),
        ("respond", flow.OK),
    ]


def test_steps_are_numbered_by_their_place_and_each_call_knows_its_callees_step() -> None:
    assert [step.number for step in flow.FLOW] == list(range(1, len(flow.FLOW) + 1))
    for step, callee in flow.CALLEE.items():
        assert step.calls and callee.actor == step.target
        assert flow.FLOW.index(callee) > flow.FLOW.index(step)
    assert set(flow.CALLEE) == {step for step in flow.FLOW if step.calls}
