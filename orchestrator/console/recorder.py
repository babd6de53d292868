"""The console's source: a span processor in the gateway that keeps each order run and
registration it answers, as the console draws them.

It needs no collector. Every span the gateway ends passes through it: a request's step
spans and client spans wait, grouped by their parent, until the request's server span
ends; then, if that request was an order or a registration, they become one
:class:`~orchestrator.console.runs.Run` in the store, and are let go either way. Each
client span carries its callee's own time and the calls the callee reported in its
``Server-Timing`` (Notifications' call to Profiles, Auth's to Profiles and Billing), so
the run shows the hops behind the gateway's too.

Only sampled (recording) requests are seen: with ``OTEL_TRACES_SAMPLER`` sampling a
fraction, the console shows that fraction. Each gateway keeps its own runs: behind a load
balancer, each console shows the runs of the gateway that served it.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import attrs
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from contracts import vocabulary as words
from orchestrator import flow, spans
from orchestrator.console import runs
from orchestrator.console.store import RunStore
from services.common import tracing

log = logging.getLogger(__name__)

# The gateway's routes that make a run, by kind.
RUN_ROUTES = {("POST", "/orders"): runs.ORDER, ("POST", "/auth/register"): runs.REGISTRATION}
# Spans waiting for their request's end; more means requests that never end, and the
# oldest are let go.
MAX_WAITING = 20_000
STEP_BY_NUMBER = {step.number: step for step in flow.FLOW}


class Recorder(SpanProcessor):
    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        # Ended spans by their parent's span ID, until the request they belong to ends.
        self._children: dict[int, list[ReadableSpan]] = {}
        self._waiting = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context, parent = span.context, span.parent
        if context is None:
            return
        root = span.kind == SpanKind.SERVER and (parent is None or parent.is_remote)
        if not root:
            if parent is not None:
                with self._lock:
                    self._children.setdefault(parent.span_id, []).append(span)
                    self._waiting += 1
                    if self._waiting > MAX_WAITING:
                        self._children.clear()
                        self._waiting = 0
            return
        descendants = self._take(context.span_id)
        attributes = attributes_of(span)
        kind = RUN_ROUTES.get((str(attributes.get("http.request.method")), str(attributes.get("http.route"))))
        if kind is None:
            return
        try:
            head, drawing = record(span, descendants, kind)
            self.store.add(head, drawing.complete)
        except Exception:
            # The console is a view: a run it cannot draw must not fail the answer.
            log.exception("the console could not record a run")

    def _take(self, span_id: int) -> list[ReadableSpan]:
        """The request's spans, each after its parent, all let go."""
        found: list[ReadableSpan] = []
        with self._lock:
            parents = [span_id]
            while parents:
                children = self._children.pop(parents.pop(), [])
                self._waiting -= len(children)
                for child in children:
                    found.append(child)
                    if child.context is not None:
                        parents.append(child.context.span_id)
        return found

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def attributes_of(span: ReadableSpan) -> Mapping[str, Any]:
    """A span's attributes, read once: the lean tracer's own dict, else a copy of the
    SDK's (whose ``attributes`` wraps them anew on each access)."""
    if isinstance(span, tracing.LeanSpan):
        return span.values
    return dict(span.attributes or {})


def _ms(nanoseconds: int) -> float:
    return nanoseconds / 1_000_000


def _iso(nanoseconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(nanoseconds / 1e9, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def build_run(root: ReadableSpan, descendants: Sequence[ReadableSpan], kind: str) -> runs.Run:
    """One run from the gateway's server span and the spans made while answering."""
    head, drawing = record(root, descendants, kind)
    return drawing.complete(head)


def record(root: ReadableSpan, descendants: Sequence[ReadableSpan], kind: str) -> tuple[runs.Run, Drawing]:
    """The run without its drawing (everything the list, the search and the summary
    use: the IDs, the outcome, the steps' times), and what draws it, kept until someone
    opens the run: most runs are never opened, and their calls were most of what
    recording a run cost."""
    attributes = attributes_of(root)
    assert root.start_time is not None and root.end_time is not None and root.context is not None
    began = root.start_time
    status = int(attributes.get("http.response.status_code", 0))
    # The step spans, by span ID: the step each stands for.
    steps_by_id: dict[int, flow.Step] = {}
    timings: list[tuple[flow.Step, float]] = []
    outcomes: dict[flow.Step, str] = {}
    client_spans: list[tuple[ReadableSpan, Mapping[str, Any]]] = []
    for span in descendants:
        if span.context is None or span.start_time is None or span.end_time is None:
            continue
        span_attributes = attributes_of(span)
        if span.kind == SpanKind.CLIENT:
            client_spans.append((span, span_attributes))
            continue
        number = span_attributes.get(flow.STEP_NUMBER)
        step = STEP_BY_NUMBER.get(int(number)) if span.kind == SpanKind.INTERNAL and number is not None else None
        if step is not None:
            steps_by_id[span.context.span_id] = step
            timings.append((step, _ms(span.end_time - span.start_time)))
            outcomes[step] = str(span_attributes.get(flow.STEP_OUTCOME, flow.OK))
    clients = []
    for span, span_attributes in client_spans:
        step = steps_by_id.get(span.parent.span_id) if span.parent is not None else None
        client = _ClientSpan.of(span, span_attributes, step)
        clients.append(client)
        callee = flow.CALLEE.get(step) if step is not None else None
        if callee is not None and client.server_ms is not None:
            timings.append((callee, client.server_ms))
    step_times = [
        runs.StepTime(step.number, step.name, round(ms, 3), outcomes.get(step, flow.OK))
        for step, ms in flow.sorted_by_number(flow.step_durations(timings))
    ]
    head = _finish(attributes, kind, status, root, began, step_times)
    # Only the steps that failed: the drawing marks their calls.
    failed = {step: outcome for step, outcome in outcomes.items() if outcome != flow.OK}
    root_call = (
        str(attributes.get("http.request.method", "POST")),
        str(attributes.get("http.route", "")),
        attributes.get(tracing.ERROR_CODE),
    )
    return head, Drawing(root_call, format(root.context.span_id, "016x"), status, began, root.end_time, clients, failed)


@attrs.frozen(slots=True)
class _ClientSpan:
    """What a call's client span says, copied as it ended (a few values, not the span)."""

    span_id: int
    start_time: int
    end_time: int
    step: flow.Step | None
    target: str
    method: str
    route: str
    status: int | None
    server_ms: float | None
    # Server-Timing's reported calls, the error body's code and title, why it failed.
    callee_calls: str | None
    code: str | None
    status_text: str | None
    reason: str | None

    @classmethod
    def of(cls, span: ReadableSpan, attributes: Mapping[str, Any], step: flow.Step | None) -> _ClientSpan:
        assert span.context is not None and span.start_time is not None and span.end_time is not None
        status = attributes.get("http.response.status_code")
        reason = attributes.get("error.type")
        text = attributes.get(tracing.STATUS_TEXT)
        callee_calls = attributes.get(tracing.CALLEE_CALLS)
        return cls(
            span.context.span_id,
            span.start_time,
            span.end_time,
            step,
            str(attributes.get(tracing.TARGET, "")),
            str(attributes.get("http.request.method", "")),
            str(attributes.get("url.template", "")),
            int(status) if status is not None else None,
            attributes.get(tracing.SERVER_MS),
            str(callee_calls) if callee_calls else None,
            attributes.get(tracing.ERROR_CODE),
            str(text) if text else None,
            str(reason) if reason is not None else None,
        )


@attrs.frozen(slots=True)
class Drawing:
    """The calls of one run, from its spans, made the first time the run is opened."""

    # The client's call to the gateway: method, route, error code.
    root: tuple[str, str, Any]
    root_id: str
    status: int
    began: int
    ended: int
    clients: list[_ClientSpan]
    # The steps that failed, and why.
    failed: dict[flow.Step, str]

    def complete(self, head: runs.Run) -> runs.Run:
        """``head`` with its calls and the participants they touch."""
        calls = self.calls()
        touched = {call.target for call in calls} | {call.source for call in calls}
        participants = [name for name in runs.PARTICIPANTS if name in touched or name in ("client", "gateway")]
        return attrs.evolve(head, participants=participants, calls=calls)

    def calls(self) -> list[runs.Call]:
        method, route, code = self.root
        calls = [
            runs.Call(
                id=self.root_id,
                parent=None,
                source="client",
                target="gateway",
                method=method,
                route=route,
                start_ms=0.0,
                duration_ms=_ms(self.ended - self.began),
                server_ms=_ms(self.ended - self.began),
                status=self.status,
                status_text=_phrase(self.status),
                code=code,
                # How the run ended is its own field (``stopped``); the client's call is not a step.
                failed=False,
            )
        ]
        for client in self.clients:
            call = _client_call(client, self.root_id, self.began)
            calls.append(call)
            calls.extend(_reported_calls(client.callee_calls, call))
        calls.sort(key=lambda call: (call.start_ms, call.parent is not None))
        return _mark_failures(calls, self.failed)


def _client_call(span: _ClientSpan, parent: str, began: int) -> runs.Call:
    step = span.step
    # The error body's title, else the status's phrase; without an answer, why.
    text = (span.status_text or _phrase(span.status)) if span.status is not None else (span.reason or "no answer")
    return runs.Call(
        id=format(span.span_id, "016x"),
        parent=parent,
        source="gateway",
        target=span.target,
        method=span.method,
        route=span.route,
        step=step.number if step else None,
        step_name=step.name if step else None,
        start_ms=_ms(span.start_time - began),
        duration_ms=_ms(span.end_time - span.start_time),
        server_ms=span.server_ms,
        status=span.status,
        status_text=text,
        code=span.code,
        failed=span.reason is not None,
        reason=span.reason,
    )


def _mark_failures(calls: list[runs.Call], outcomes: dict[flow.Step, str]) -> list[runs.Call]:
    """Only the call that failed its step is marked failed: the last the step made. An
    earlier attempt that got no answer, or a 5xx, was retried; it keeps its reason."""
    last_of_step: dict[int, int] = {}
    for index, call in enumerate(calls):
        if call.parent == calls[0].id and call.step is not None:
            last_of_step[call.step] = index
    failed_steps = {step.number for step, outcome in outcomes.items() if outcome != flow.OK}
    marked = []
    for index, call in enumerate(calls):
        if call.parent == calls[0].id and call.step is not None:
            failed = call.step in failed_steps and last_of_step[call.step] == index
            if failed != call.failed:
                call = attrs.evolve(call, failed=failed)
        marked.append(call)
    return marked


def _reported_calls(header: str | None, call: runs.Call) -> list[runs.Call]:
    """The calls the callee reported making, placed inside the call that asked it."""
    if not header:
        return []
    # The callee's clock starts when it received the request: the wire time is split
    # evenly between the way there and the way back.
    wire = max(0.0, call.duration_ms - (call.server_ms or call.duration_ms))
    offset = call.start_ms + wire / 2
    found = []
    for number, reported in enumerate(tracing.parse_timing_calls(str(header)), 1):
        failed = reported.status is None or reported.status >= 500
        found.append(
            runs.Call(
                id=f"{call.id}.{number}",
                parent=call.id,
                source=call.target,
                target=reported.target,
                method=reported.method,
                route=reported.route,
                step=call.step + 1 if call.step is not None else None,
                step_name=_callee_name(call.step),
                start_ms=offset + reported.start_ms,
                duration_ms=reported.duration_ms,
                server_ms=reported.server_ms,
                status=reported.status,
                status_text=_phrase(reported.status) if reported.status is not None else reported.reason or "no answer",
                failed=failed,
                reason=reported.reason or (words.SERVER_ERROR if failed and reported.status else None),
            )
        )
    return found


def _callee_name(number: int | None) -> str | None:
    """The step the callee performs, for a call made at step ``number``."""
    step = STEP_BY_NUMBER.get(number) if number is not None else None
    callee = flow.CALLEE.get(step) if step is not None else None
    return callee.name if callee is not None else None


def _finish(
    attributes: Mapping[str, Any],
    kind: str,
    status: int,
    root: ReadableSpan,
    began: int,
    step_times: list[runs.StepTime],
) -> runs.Run:
    assert root.end_time is not None and root.context is not None
    stop = None
    outcome, text = _outcome(attributes, kind, status)
    if outcome == runs.STOPPED:
        step = int(attributes[spans.STOPPED_STEP])
        name = str(attributes[spans.STOPPED_NAME])
        reason = str(attributes[spans.STOPPED_REASON])
        stop = runs.Stop(step, name, str(attributes.get(tracing.ERROR_CODE, f"{name}_failed")), reason)
    return runs.Run(
        id=str(attributes.get(spans.RUN_ID) or format(root.context.span_id, "016x")),
        kind=kind,
        started_at=_iso(began),
        duration_ms=round(_ms(root.end_time - began), 3),
        status=status,
        request_id=str(attributes.get(tracing.REQUEST_ID, "")),
        trace_id=format(root.context.trace_id, "032x"),
        idempotency_key=attributes.get(spans.IDEMPOTENCY_KEY),
        order_id=attributes.get(spans.ORDER_ID),
        user_id=attributes.get(spans.USER_ID),
        total=attributes.get(spans.TOTAL),
        currency=attributes.get(spans.CURRENCY),
        outcome=outcome,
        outcome_text=text,
        stopped=stop,
        letter_pending=bool(attributes.get(spans.LETTER_PENDING, False)),
        replayed=bool(attributes.get(spans.REPLAYED, False)),
        steps=step_times,
    )


def _outcome(attributes: Mapping[str, Any], kind: str, status: int) -> tuple[str, str]:
    """What became of the run: a word the console colours, and a text for people."""
    code = attributes.get(tracing.ERROR_CODE)
    if kind == runs.REGISTRATION:
        if status < 300:
            return runs.REGISTERED, "registered"
        if status >= 500:
            return runs.REGISTRATION_FAILED, f"registration failed ({code or status})"
        return runs.REFUSED, str(code or status)
    if spans.STOPPED_STEP in attributes and status >= 500:
        return (
            runs.STOPPED,
            f"stopped at step {attributes[spans.STOPPED_STEP]} ({attributes[spans.STOPPED_REASON]})",
        )
    if status >= 400 or spans.STATUS not in attributes:
        return runs.REFUSED, str(code or status)
    order_status = str(attributes[spans.STATUS])
    if attributes.get(spans.REPLAYED):
        return runs.REPLAYED, f"replayed ({order_status})"
    if attributes.get(spans.LETTER_PENDING):
        return runs.LETTER_PENDING, "letter pending"
    if order_status == words.CANCELLED:
        reason = attributes.get(spans.REASON)
        return runs.CANCELLED, f"cancelled ({reason})" if reason else "cancelled"
    return runs.PAID, "paid"
