"""What the gateway writes on its server span about the run it answered: the order, how
it ended, where it stopped. Exporters send it with the span; the console's recorder
reads it back."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from orchestrator import flow

KIND = "syncorders.run.kind"
RUN_ID = "syncorders.run.id"
IDEMPOTENCY_KEY = "syncorders.idempotency_key"
ORDER_ID = "syncorders.order.id"
USER_ID = "syncorders.user.id"
TOTAL = "syncorders.order.total"
CURRENCY = "syncorders.order.currency"
STATUS = "syncorders.order.status"
REASON = "syncorders.order.reason"
REPLAYED = "syncorders.replayed"
LETTER_PENDING = "syncorders.letter_pending"
STOPPED_STEP = "syncorders.stopped.step"
STOPPED_NAME = "syncorders.stopped.step_name"
STOPPED_REASON = "syncorders.stopped.reason"

ORDER_RUN = "order"
REGISTRATION_RUN = "registration"


def describe_order(span: Span, run: flow.Run) -> None:
    """The run as it stands when the gateway answers (finished or stopped), in one call:
    each ``set_attribute`` takes the span's lock."""
    described: dict[str, Any] = {
        KIND: ORDER_RUN,
        RUN_ID: run.run_id,
        IDEMPOTENCY_KEY: run.idempotency_key,
        USER_ID: run.user_id,
    }
    order = run.order
    if order is not None:
        described.update(
            {
                ORDER_ID: order.id,
                TOTAL: order.total,
                CURRENCY: order.currency,
                STATUS: order.status,
                REPLAYED: run.replayed,
                LETTER_PENDING: run.letter_pending,
            }
        )
        if order.reason:
            described[REASON] = order.reason
    span.set_attributes(described)


def describe_stop(span: Span, stopped: flow.FlowStopped) -> None:
    span.set_attributes(
        {STOPPED_STEP: stopped.step.number, STOPPED_NAME: stopped.step.name, STOPPED_REASON: stopped.failure.reason}
    )


def describe_registration(span: Span, run_id: str, user_id: str | None) -> None:
    span.set_attribute(KIND, REGISTRATION_RUN)
    span.set_attribute(RUN_ID, run_id)
    if user_id is not None:
        span.set_attribute(USER_ID, user_id)
