"""The order flow, as data: the eleven steps of the design, in order, and one loop that
runs them.

Each step names who performs it and whom it calls (that is what the sequence diagram is
drawn from), quotes its sentence from the design, and, when the gateway performs it,
holds the action. Saga-free: there are no compensations. A failing step stops the flow
with a reason from its closed set and leaves the order in a state that the same request
sent again, or the recovery command, finishes; every step is idempotent, keyed by the
order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from contracts import billing, notifications, orders
from contracts.converter import structure
from contracts.gateway import OrderRequest, OrderResult
from services.common.clients import BillingClient, NotificationsClient, OrdersClient
from services.common.http import BAD_RESPONSE, DownstreamError, Reply

log = logging.getLogger(__name__)

# The closed set of reasons a step fails for.
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
SERVER_ERROR = "server_error"
BAD_ANSWER = BAD_RESPONSE
REFUSED = "refused"
DOWNSTREAM_FAILURES = frozenset({UNAVAILABLE, TIMEOUT, SERVER_ERROR, BAD_ANSWER})

CREATE = "create"
RECOVER = "recover"


@attrs.frozen
class Services:
    orders: OrdersClient
    billing: BillingClient
    notifications: NotificationsClient


@attrs.define
class Run:
    """One run of the flow for one order: what came in, and what each step produced."""

    services: Services
    user_id: str
    body: Any
    idempotency_key: str
    run_id: str = attrs.Factory(lambda: uuid.uuid4().hex)
    mode: str = CREATE
    request: OrderRequest | None = None
    order: orders.Order | None = None
    replayed: bool = False
    payment: billing.Payment | None = None
    decline: str | None = None
    letter: notifications.Letter | None = None
    letter_created: bool = False
    letter_pending: bool = False
    result: OrderResult | None = None
    # (step number, step name, milliseconds), in the order they were measured.
    timings: list[tuple[int, str, float]] = attrs.Factory(list)
    # Each step's own milliseconds, by step number, once the run ends (step_durations).
    durations: dict[int, float] = attrs.Factory(dict)


class StepFailed(Exception):
    def __init__(
        self,
        reason: str,
        detail: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.code = code
        # When the service that failed asked to be called again, seconds.
        self.retry_after = retry_after


class Forbidden(Exception):
    """Step 2: the order is not in the token owner's name."""


class FlowStopped(Exception):
    """The flow stopped at ``step``; ``order_id`` is set once the order exists."""

    def __init__(self, step: Step, failure: StepFailed, order_id: str | None) -> None:
        super().__init__(f"step {step.number} ({step.name}) failed: {failure.reason}: {failure.detail}")
        self.step = step
        self.failure = failure
        self.order_id = order_id


Action = Callable[[Run], None]


@attrs.frozen
class Step:
    number: int
    name: str
    actor: str
    target: str | None
    sentence: str
    action: Action | None = None
    failures: frozenset[str] = frozenset()
    # A failed notification must not turn a finished order into an error.
    must_succeed: bool = True
    # The message drawn on the sequence diagram, and the answers that follow it.
    label: str = ""
    returns: tuple[tuple[str, str, str], ...] = ()


def _call(run: Run, step_number: int, call: Callable[[], Reply]) -> Reply:
    """A downstream call with its failure mapped to the step's closed set; the callee's
    own time is recorded as the next step, the one it performs."""
    try:
        reply = call()
    except DownstreamError as exc:
        raise StepFailed(exc.reason, str(exc), exc.status, retry_after=exc.retry_after) from exc
    if reply.server_ms is not None:
        run.timings.append((step_number + 1, "", reply.server_ms))
    return reply


def _refused(reply: Reply) -> StepFailed:
    """A documented error answer. A 503 among them is the service unable to serve now,
    not a refusal."""
    assert reply.error is not None
    reason = UNAVAILABLE if reply.status == 503 else REFUSED
    detail = reply.error.description or reply.error.title
    return StepFailed(reason, detail, reply.status, reply.error.code, reply.retry_after)


def authorize(run: Run) -> None:
    """2. The gateway validates the JWT, checks that the order is being created in the
    name of the token's owner, and validates the input.

    The token was verified on the way in; here the body is structured (422 on a bad
    field) and its ``user_id`` must be the token's subject (403)."""
    if run.request is None:
        run.request = structure(run.body, OrderRequest)
    if run.request.user_id != run.user_id:
        raise Forbidden("Orders can only be created in the name of the token's owner.")


def create_order(run: Run) -> None:
    """3. The gateway sends the create request to Orders.

    4. Orders generates an ID, creates the order with status `pending`, returns the ID
    and the order. The idempotency key makes a retry return the same order."""
    assert run.request is not None
    new = orders.NewOrder(
        user_id=run.user_id,
        items=run.request.items,
        currency=run.request.currency,
        idempotency_key=run.idempotency_key,
        run_id=run.run_id,
    )
    reply = _call(run, 3, lambda: run.services.orders.create_order(new))
    if reply.error is not None:
        raise _refused(reply)
    run.order = reply.data
    run.replayed = reply.status == 200


def pay(run: Run) -> None:
    """5. The gateway sends a payment request to Billing.

    6. Billing checks the wallet balance. Enough: it creates a wallet operation for the
    order's amount and returns the operation. Not enough: `406` "Insufficient funds".
    Billing keeps one decision per order, so a retry never debits twice. Recovery asks
    for the decision that stands instead, recording a decline if there is none."""
    order = run.order
    assert order is not None
    request = billing.PaymentRequest(
        order_id=order.id, user_id=order.user_id, amount=order.total, currency=order.currency
    )
    if run.mode == RECOVER:
        reply = _call(run, 5, lambda: run.services.billing.abandon_payment(request))
    else:
        reply = _call(run, 5, lambda: run.services.billing.pay(request))
    if reply.status == 406:
        assert reply.error is not None
        run.decline = reply.error.title
        return
    if reply.status == 404:
        run.decline = "No wallet for this customer"
        return
    if reply.error is not None:
        raise _refused(reply)
    payment: billing.Payment = reply.data
    if payment.outcome == "declined":
        run.decline = payment.reason or "Declined"
    else:
        run.payment = payment


def update_status(run: Run) -> None:
    """7. The gateway sends a status update to Orders.

    8. Orders sets `cancelled` if the payment failed, `paid` if it succeeded, and
    returns the updated order."""
    order = run.order
    assert order is not None
    if run.payment is not None:
        change = orders.StatusChange(status="paid", payment_id=run.payment.id)
    else:
        change = orders.StatusChange(status="cancelled", reason=run.decline or "Payment failed")
    reply = _call(run, 7, lambda: run.services.orders.set_status(order.id, change))
    if reply.error is not None:
        raise _refused(reply)
    run.order = reply.data


def notify(run: Run) -> None:
    """9. The gateway sends the order to Notifications.

    10. Notifications asks Profiles for the customer's contact data; for a `paid`
    order it sends the "happy letter", for a `cancelled` one the "sad letter", to the
    customer's email; returns the ID of the letter. One letter per order and status."""
    order = run.order
    assert order is not None
    request = notifications.LetterRequest(
        order_id=order.id,
        user_id=order.user_id,
        status=order.status,
        total=order.total,
        currency=order.currency,
        reason=order.reason,
    )
    reply = _call(run, 9, lambda: run.services.notifications.send_letter(request))
    if reply.error is not None:
        raise _refused(reply)
    run.letter = reply.data
    run.letter_created = reply.status == 201


def respond(run: Run) -> None:
    """11. The gateway returns the created order to the client."""
    assert run.order is not None
    run.result = OrderResult(
        order=run.order,
        payment=run.payment.operation if run.payment else None,
        letter_id=run.letter.id if run.letter else None,
        letter_pending=run.letter is None,
    )


CALL_FAILURES = DOWNSTREAM_FAILURES | {REFUSED}

FLOW: tuple[Step, ...] = (
    Step(
        1,
        "receive",
        "client",
        "gateway",
        "The client sends `POST` to create an order to the API Gateway.",
        label="POST /orders (JWT)",
    ),
    Step(
        2,
        "authorize",
        "gateway",
        None,
        "The gateway validates the JWT, checks that the order is being created in the name of the "
        "token's owner, and validates the input.",
        authorize,
        label="validate JWT, owner, input",
    ),
    Step(
        3,
        "create_order",
        "gateway",
        "orders",
        "The gateway sends the create request to Orders.",
        create_order,
        CALL_FAILURES,
        label="POST /orders",
    ),
    Step(
        4,
        "order_created",
        "orders",
        "gateway",
        "Orders generates an ID, creates the order with status `pending`, returns the ID and the order.",
        label="201 order (pending)",
    ),
    Step(
        5,
        "pay",
        "gateway",
        "billing",
        "The gateway sends a payment request to Billing.",
        pay,
        CALL_FAILURES,
        label="POST /payments",
    ),
    Step(
        6,
        "payment_decided",
        "billing",
        "gateway",
        "Billing checks the wallet balance. Enough: it creates a wallet operation for the order's amount "
        'and returns the operation. Not enough: `406` with the explanation "Insufficient funds".',
        label="201 operation | 406 Insufficient funds",
    ),
    Step(
        7,
        "update_status",
        "gateway",
        "orders",
        "The gateway sends a status update to Orders.",
        update_status,
        CALL_FAILURES,
        label="PUT /orders/{id}/status",
    ),
    Step(
        8,
        "status_updated",
        "orders",
        "gateway",
        "Orders sets `cancelled` if the payment failed, `paid` if it succeeded, and returns the updated order.",
        label="200 order (paid | cancelled)",
    ),
    Step(
        9,
        "notify",
        "gateway",
        "notifications",
        "The gateway sends the order to Notifications.",
        notify,
        CALL_FAILURES,
        must_succeed=False,
        label="POST /letters",
    ),
    Step(
        10,
        "letter_sent",
        "notifications",
        "profiles",
        "Notifications asks Profiles for the customer's contact data; for a `paid` order it sends the "
        '"happy letter", for a `cancelled` one the "sad letter", to the customer\'s email; returns the '
        "ID of the letter.",
        label="GET /profiles/{user_id}",
        returns=(
            ("profiles", "notifications", "200 contact data (email)"),
            ("notifications", "gateway", "201 letter ID (happy or sad letter sent)"),
        ),
    ),
    Step(
        11,
        "respond",
        "gateway",
        "client",
        "The gateway returns the created order to the client.",
        respond,
        label="201 order, operation, letter ID",
    ),
)

STEP_BY_NAME = {step.name: step for step in FLOW}


Observer = Callable[[Step, float, str], None]
OK = "ok"


def run_flow(run: Run, steps: tuple[Step, ...] = FLOW, first: int = 1, observe: Observer | None = None) -> Run:
    """Run the gateway's steps from ``first`` on, in order, timing each; ``observe``
    hears each step's duration (ms) and outcome (``ok`` or the failure reason). One log
    line, stopped or not, gives every step's time."""
    try:
        for step in steps:
            if step.action is not None and step.number >= first:
                _run_step(run, step, step.action, observe)
    finally:
        run.durations = step_durations(run)
        log.info("order flow steps (ms): %s", timings_text(run.durations))
    return run


def _run_step(run: Run, step: Step, action: Action, observe: Observer | None) -> None:
    started = time.perf_counter()
    try:
        action(run)
    except StepFailed as failure:
        elapsed = (time.perf_counter() - started) * 1000
        run.timings.append((step.number, step.name, elapsed))
        if observe is not None:
            observe(step, elapsed, failure.reason)
        log.warning("step %s %s failed after %.1f ms: %s", step.number, step.name, elapsed, failure)
        if step.must_succeed:
            raise FlowStopped(step, failure, run.order.id if run.order else None) from failure
        run.letter_pending = True
        return
    elapsed = (time.perf_counter() - started) * 1000
    run.timings.append((step.number, step.name, elapsed))
    if observe is not None:
        observe(step, elapsed, OK)


def timings_text(durations: dict[int, float]) -> str:
    """``2 authorize 0.03, 3 create_order 0.41, 4 order_created 0.35, ...``"""
    return ", ".join(f"{number} {STEP_BY_NUMBER[number].name} {ms:.2f}" for number, ms in sorted(durations.items()))


def step_durations(run: Run) -> dict[int, float]:
    """Milliseconds per step: a call's time less the callee's own, which is the next
    step's (the callee performs it)."""
    totals: dict[int, float] = {}
    for number, _name, ms in run.timings:
        totals[number] = totals.get(number, 0.0) + ms
    for number in list(totals):
        if number + 1 in totals and STEP_BY_NUMBER[number].target not in (None, "client"):
            callee = STEP_BY_NUMBER[number + 1]
            if callee.action is None:
                totals[number] = max(0.0, totals[number] - totals[number + 1])
    return totals


STEP_BY_NUMBER = {step.number: step for step in FLOW}
