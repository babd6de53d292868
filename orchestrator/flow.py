"""The order flow, as data: the eleven steps of the design, in order, and one loop that
runs them.

Each step names who performs it and whom it calls (that is what the sequence diagram is
drawn from), quotes its sentence from the design, and, when the gateway performs it,
holds the action. A step's number is its place in :data:`FLOW`, and the step a call's
callee performs is the next one that callee acts in, so steps are known by identity:
adding or moving a step is an edit of :data:`FLOW` and of its action, nothing else.

Saga-free: there are no compensations. A failing step stops the flow with a reason from
the closed set of :mod:`contracts.vocabulary` and leaves the order in a state that the
same request sent again, or the recovery command, finishes; every step is idempotent,
keyed by the order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode, Tracer, set_span_in_context

from contracts import billing, notifications, orders
from contracts import vocabulary as words
from contracts.converter import structure
from contracts.gateway import OrderRequest, OrderResult
from services.common.clients import BillingClient, NotificationsClient, OrdersClient
from services.common.http import DownstreamError, Reply

log = logging.getLogger(__name__)

# A step span's attributes: its number in the flow, and ``ok`` or the failure reason.
STEP_NUMBER = "syncorders.step.number"
STEP_OUTCOME = "syncorders.step.outcome"

# How a run treats payment: a client's order asks Billing to pay; recovery asks for the
# decision that stands, recording a decline if there is none.
CREATE = "create"
RECOVER = "recover"
OK = "ok"


@attrs.frozen
class Services:
    orders: OrdersClient
    billing: BillingClient
    notifications: NotificationsClient


@attrs.frozen
class Decline:
    """Why the order was not paid: a code the flow decides on, a text for people."""

    code: str
    text: str


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


Action = Callable[["Run", "Step"], None]


# Known by identity (``eq=False``): a step is the one object in FLOW, whatever its fields.
@attrs.frozen(eq=False)
class Step:
    """One step of the design. ``number`` is set from the step's place in the flow."""

    name: str
    actor: str
    target: str | None
    sentence: str
    action: Action | None = None
    # A failed notification must not turn a finished order into an error.
    must_succeed: bool = True
    # The callee's refusals that are the client's to fix, passed on with their own
    # status instead of as the step failing.
    client_refusals: frozenset[int] = frozenset()
    # The message drawn on the sequence diagram, and the answers that follow it.
    label: str = ""
    returns: tuple[tuple[str, str, str], ...] = ()
    number: int = 0

    @property
    def calls(self) -> bool:
        """The gateway calls another service in this step."""
        return self.target not in (None, "client") and self.actor == "gateway"


@attrs.frozen
class Missed:
    """An optional step that failed; the run went on without it."""

    step: Step
    failure: StepFailed


@attrs.define(eq=False)
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
    decline: Decline | None = None
    letter: notifications.Letter | None = None
    letter_created: bool = False
    missed: list[Missed] = attrs.Factory(list)
    result: OrderResult | None = None
    # (step, milliseconds), in the order they were measured: a gateway step's own
    # time, or a callee's time for the step it performs.
    timings: list[tuple[Step, float]] = attrs.Factory(list)
    # Each step's own milliseconds, once the run ends (see step_durations).
    durations: dict[Step, float] = attrs.Factory(dict)

    @property
    def letter_pending(self) -> bool:
        """The order is final but its letter was not made: step 9 failed or never ran."""
        return self.order is not None and self.order.status in words.FINAL_STATUSES and self.letter is None


class Forbidden(Exception):
    """Step 2: the order is not in the token owner's name."""


class FlowStopped(Exception):
    """The flow stopped at ``step``; ``order_id`` is set once the order exists."""

    def __init__(self, step: Step, failure: StepFailed, order_id: str | None) -> None:
        super().__init__(f"step {step.number} ({step.name}) failed: {failure.reason}: {failure.detail}")
        self.step = step
        self.failure = failure
        self.order_id = order_id


def _call(run: Run, step: Step, call: Callable[[], Reply]) -> Reply:
    """A downstream call with its failure mapped to the closed set; the callee's own
    time is recorded under the step it performs."""
    try:
        reply = call()
    except DownstreamError as exc:
        raise StepFailed(exc.reason, str(exc), exc.status, retry_after=exc.retry_after) from exc
    callee = CALLEE.get(step)
    if reply.server_ms is not None and callee is not None:
        run.timings.append((callee, reply.server_ms))
    return reply


def _refused(reply: Reply) -> StepFailed:
    """A documented error answer. A 503 among them is the service unable to serve now,
    not a refusal."""
    assert reply.error is not None
    reason = words.UNAVAILABLE if reply.status == 503 else words.REFUSED
    detail = reply.error.description or reply.error.title
    return StepFailed(reason, detail, reply.status, reply.error.code, reply.retry_after)


def authorize(run: Run, step: Step) -> None:
    """2. The gateway validates the JWT, checks that the order is being created in the
    name of the token's owner, and validates the input.

    The token was verified on the way in; here the body is structured (422 on a bad
    field) and its ``user_id`` must be the token's subject (403)."""
    if run.request is None:
        run.request = structure(run.body, OrderRequest)
    if run.request.user_id != run.user_id:
        raise Forbidden("Orders can only be created in the name of the token's owner.")


def create_order(run: Run, step: Step) -> None:
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
    reply = _call(run, step, lambda: run.services.orders.create_order(new))
    if reply.error is not None:
        raise _refused(reply)
    run.order = reply.data
    run.replayed = reply.status == 200


# Billing's refusals that decide the order (cancelled), rather than fail the step.
DECIDING_REFUSALS = {406: words.DECLINE_CODES, 404: (words.NO_WALLET,)}


def pay(run: Run, step: Step) -> None:
    """5. The gateway sends a payment request to Billing.

    6. Billing checks the wallet balance. Enough: it creates a wallet operation for the
    order's amount and returns the operation. Not enough: `406` with the explanation
    "Insufficient funds". Billing keeps one decision per order, so a retry never debits
    twice. Recovery asks for the decision that stands instead, recording a decline if
    there is none."""
    order = run.order
    assert order is not None
    request = billing.PaymentRequest(
        order_id=order.id, user_id=order.user_id, amount=order.total, currency=order.currency
    )
    if run.mode == RECOVER:
        reply = _call(run, step, lambda: run.services.billing.abandon_payment(request))
    else:
        reply = _call(run, step, lambda: run.services.billing.pay(request))
    if reply.error is not None:
        if reply.error.code not in DECIDING_REFUSALS.get(reply.status, ()):
            raise _refused(reply)
        run.decline = Decline(reply.error.code, reply.error.title)
        return
    payment: billing.Payment = reply.data
    if payment.outcome == words.DECLINED:
        run.decline = Decline(payment.reason_code or words.DECLINED, payment.reason or "Declined")
    else:
        run.payment = payment


def update_status(run: Run, step: Step) -> None:
    """7. The gateway sends a status update to Orders.

    8. Orders sets `cancelled` if the payment failed, `paid` if it succeeded, and
    returns the updated order."""
    order = run.order
    assert order is not None
    if run.payment is not None:
        change = orders.StatusChange(status=words.PAID, payment_id=run.payment.id)
    else:
        assert run.decline is not None
        change = orders.StatusChange(status=words.CANCELLED, reason=run.decline.text)
    reply = _call(run, step, lambda: run.services.orders.set_status(order.id, change))
    if reply.error is not None:
        raise _refused(reply)
    run.order = reply.data


def notify(run: Run, step: Step) -> None:
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
    reply = _call(run, step, lambda: run.services.notifications.send_letter(request))
    if reply.error is not None:
        raise _refused(reply)
    run.letter = reply.data
    run.letter_created = reply.status == 201


def respond(run: Run, step: Step) -> None:
    """11. The gateway returns the created order to the client."""
    assert run.order is not None
    run.result = OrderResult(
        order=run.order,
        payment=run.payment.operation if run.payment else None,
        letter_id=run.letter.id if run.letter else None,
        letter_pending=run.letter_pending,
    )


def numbered(steps: Iterable[Step]) -> tuple[Step, ...]:
    """The steps, each numbered by its place."""
    return tuple(attrs.evolve(step, number=place) for place, step in enumerate(steps, 1))


FLOW: tuple[Step, ...] = numbered(
    (
        Step(
            "receive",
            "client",
            "gateway",
            "The client sends `POST` to create an order to the API Gateway.",
            label="POST /orders (JWT)",
        ),
        Step(
            "authorize",
            "gateway",
            None,
            "The gateway validates the JWT, checks that the order is being created in the name of the "
            "token's owner, and validates the input.",
            authorize,
            label="validate JWT, owner, input",
        ),
        Step(
            "create_order",
            "gateway",
            "orders",
            "The gateway sends the create request to Orders.",
            create_order,
            # Orders' answer to the create request is about what the client sent: its
            # items, its Idempotency-Key.
            client_refusals=frozenset({409, 422}),
            label="POST /orders",
        ),
        Step(
            "order_created",
            "orders",
            "gateway",
            "Orders generates an ID, creates the order with status `pending`, returns the ID and the order.",
            label="201 order (pending)",
        ),
        Step(
            "pay",
            "gateway",
            "billing",
            "The gateway sends a payment request to Billing.",
            pay,
            label="POST /payments",
        ),
        Step(
            "payment_decided",
            "billing",
            "gateway",
            "Billing checks the wallet balance. Enough: it creates a wallet operation for the order's amount "
            'and returns the operation. Not enough: `406` with the explanation "Insufficient funds".',
            label="201 operation | 406 Insufficient funds",
        ),
        Step(
            "update_status",
            "gateway",
            "orders",
            "The gateway sends a status update to Orders.",
            update_status,
            label="PUT /orders/{id}/status",
        ),
        Step(
            "status_updated",
            "orders",
            "gateway",
            "Orders sets `cancelled` if the payment failed, `paid` if it succeeded, and returns the updated order.",
            label="200 order (paid | cancelled)",
        ),
        Step(
            "notify",
            "gateway",
            "notifications",
            "The gateway sends the order to Notifications.",
            notify,
            must_succeed=False,
            label="POST /letters",
        ),
        Step(
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
            "respond",
            "gateway",
            "client",
            "The gateway returns the created order to the client.",
            respond,
            label="201 order, operation, letter ID",
        ),
    )
)

STEP_BY_NAME = {step.name: step for step in FLOW}


def _callees(steps: tuple[Step, ...]) -> dict[Step, Step]:
    """For each call the gateway makes, the step its callee performs: the next step
    that callee acts in."""
    found = {}
    for place, step in enumerate(steps):
        if step.calls:
            found[step] = next(later for later in steps[place + 1 :] if later.actor == step.target)
    return found


CALLEE = _callees(FLOW)


Observer = Callable[[Step, float, str], None]


def run_flow(
    run: Run,
    start: str | None = None,
    until: str | None = None,
    observe: Observer | None = None,
    tracer: Tracer | None = None,
) -> Run:
    """Run the gateway's steps in order, from the step named ``start`` (the first by
    default) through the one named ``until`` (the last), timing each; ``observe`` hears
    each step's duration (ms) and outcome (``ok`` or the failure reason); with
    ``tracer``, each step is a span named after it, the parent of the calls it makes.
    One log line, stopped or not, gives every step's time."""
    first = FLOW.index(STEP_BY_NAME[start]) if start else 0
    last = FLOW.index(STEP_BY_NAME[until]) if until else len(FLOW) - 1
    try:
        for step in FLOW[first : last + 1]:
            if step.action is None:
                continue
            if tracer is None:
                _run_step(run, step, step.action, observe)
                continue
            # The step's span is current while it runs, so the calls it makes are its
            # children. (Made current by hand: the context managers cost more than the
            # span, and there are a dozen spans per order.)
            span = tracer.start_span(
                step.name, attributes={STEP_NUMBER: step.number}, record_exception=False, set_status_on_exception=False
            )
            token = otel_context.attach(set_span_in_context(span))
            # Anything but a step failure (a body that does not validate, an order in
            # another's name) is the request refused.
            outcome = words.REFUSED
            try:
                outcome = _run_step(run, step, step.action, observe)
            except FlowStopped as stopped:
                outcome = stopped.failure.reason
                raise
            finally:
                span.set_attribute(STEP_OUTCOME, outcome)
                if outcome != OK:
                    span.set_status(Status(StatusCode.ERROR, outcome))
                otel_context.detach(token)
                span.end()
    finally:
        run.durations = step_durations(run.timings)
        log.info("order flow steps (ms): %s", timings_text(run.durations))
    return run


def _run_step(run: Run, step: Step, action: Action, observe: Observer | None) -> str:
    """One step, timed; its outcome: ``ok``, or the reason an optional step failed. A
    failed step that must succeed stops the flow (:class:`FlowStopped`)."""
    started = time.perf_counter()
    try:
        action(run, step)
    except StepFailed as failure:
        elapsed = (time.perf_counter() - started) * 1000
        run.timings.append((step, elapsed))
        if observe is not None:
            observe(step, elapsed, failure.reason)
        log.warning("step %s %s failed after %.1f ms: %s", step.number, step.name, elapsed, failure)
        if step.must_succeed:
            raise FlowStopped(step, failure, run.order.id if run.order else None) from failure
        run.missed.append(Missed(step, failure))
        return failure.reason
    elapsed = (time.perf_counter() - started) * 1000
    run.timings.append((step, elapsed))
    if observe is not None:
        observe(step, elapsed, OK)
    return OK


def timings_text(durations: dict[Step, float]) -> str:
    """``2 authorize 0.03, 3 create_order 0.41, 4 order_created 0.35, ...``"""
    return ", ".join(f"{step.number} {step.name} {ms:.2f}" for step, ms in sorted_by_number(durations))


def sorted_by_number(durations: dict[Step, float]) -> list[tuple[Step, float]]:
    return sorted(durations.items(), key=lambda item: item[0].number)


def step_durations(timings: Iterable[tuple[Step, float]]) -> dict[Step, float]:
    """Milliseconds per step from a run's timings: a call's time less its callee's own,
    which is the step the callee performs."""
    totals: dict[Step, float] = {}
    for step, ms in timings:
        totals[step] = totals.get(step, 0.0) + ms
    for step, callee in CALLEE.items():
        if step in totals and callee in totals:
            totals[step] = max(0.0, totals[step] - totals[callee])
    return totals
