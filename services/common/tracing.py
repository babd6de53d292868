"""Tracing with OpenTelemetry: a server span per request, a client span per internal
call, W3C trace context on every call, the trace ID on every log line.

Configured by the standard ``OTEL_*`` variables, read by the SDK when a service starts:
``OTEL_SDK_DISABLED=true`` turns tracing off; ``OTEL_SERVICE_NAME`` names the service
(default ``syncorders-<service>``); ``OTEL_TRACES_SAMPLER`` and ``_ARG`` sample;
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) exports every
span over OTLP/HTTP in batches (``OTEL_BSP_*``). Without an endpoint nothing leaves the
process; the gateway's console still reads its own spans (a processor it passes in).

Attribute names follow the semantic conventions for HTTP (``http.request.method``,
``url.path``, ``http.route``, ``http.response.status_code``, ``server.address``,
``error.type``); what they cannot say is under ``syncorders.``.

Spans are made by :class:`LeanTracer`: the SDK's sampler, IDs, resource, processors and
exporters, with a span that does less per call than the SDK's own (an order makes
seventeen of them across the services).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import traceback
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from time import time_ns
from typing import Any

import attrs
import falcon
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
    sampling,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from services.common.routes import plain_template

SCOPE = "syncorders"
# Attributes of our own, beside the semantic conventions'.
REQUEST_ID = "syncorders.request_id"
SERVER_MS = "syncorders.server_ms"
ERROR_CODE = "syncorders.error_code"
STATUS_TEXT = "syncorders.status_text"
CALLEE_CALLS = "syncorders.callee_calls"
TARGET = "syncorders.target"
EXPORT_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class Tracing:
    """One service's tracer provider. ``processors`` see every span this process ends
    (the gateway's console passes its recorder)."""

    def __init__(
        self, service: str, processors: Iterable[SpanProcessor] = (), environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self.service = service
        self.enabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"
        resource = Resource.create({})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: f"syncorders-{service}"}))
        # The provider's processors, held here too: the lean tracer hands spans to them.
        self.processor = SynchronousMultiSpanProcessor()
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False, active_span_processor=self.processor)
        self.exporting = self.enabled and exports(env)
        if self.exporting:
            # Imported only when used: the exporter brings protobuf and an HTTP client.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.tracer: trace.Tracer = LeanTracer(self.provider, self.processor) if self.enabled else NO_TRACING

    def shutdown(self) -> None:
        """Flush what is batched for export; called when the service stops."""
        self.provider.shutdown()


def exports(env: Mapping[str, str]) -> bool:
    """An OTLP endpoint is configured and export is not switched off."""
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(env.get(name) for name in EXPORT_ENDPOINTS)


NO_TRACING = trace.NoOpTracer()
_UNSET = Status(StatusCode.UNSET)


class LeanTracer(trace.Tracer):
    """Spans from the SDK's parts with less work per span than the SDK's ``Tracer``.

    The sampler (``OTEL_TRACES_SAMPLER``), the ID generator, the resource and the span
    processors (the console's recorder, the OTLP exporter's batch) are the provider's.
    What the SDK's own span adds, and a service here has no use for, is left out: a
    lock per span (each span is used by the one thread that answers its request), a
    bounded map that checks every attribute value (ours are strings and numbers, a few
    each), a copy of the span for the processors when it ends, and the SDK's metrics
    about itself. A profile of the gateway at concurrency 8 put those at more than half
    of what tracing cost."""

    def __init__(self, provider: TracerProvider, processor: SynchronousMultiSpanProcessor) -> None:
        self.sampler = provider.sampler
        # The default sampler (parent-based, always on at the root) decided here directly.
        self.parent_decides = provider.sampler is sampling.DEFAULT_ON
        self.ids = provider.id_generator
        self.random_ids = self.ids.is_trace_id_random()
        self.resource = provider.resource
        self.processor = processor
        self.scope = InstrumentationScope(SCOPE)

    def start_span(
        self,
        name: str,
        context: context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        else:
            parent, trace_id, random_id = None, self.ids.generate_trace_id(), self.random_ids
        trace_state = parent.trace_state if parent is not None else None
        extra: Mapping[str, Any] | None = None
        if self.parent_decides:
            sampled = parent.trace_flags.sampled if parent is not None else True
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
            if not result.decision.is_recording():
                flags = TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT
                ids = SpanContext(trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), result.trace_state)
                return trace.NonRecordingSpan(ids)
            sampled, trace_state, extra = result.decision.is_sampled(), result.trace_state, result.attributes
        if not sampled:
            flags = TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.DEFAULT
            ids = SpanContext(trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), trace_state)
            return trace.NonRecordingSpan(ids)
        flags = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.SAMPLED
        ids = SpanContext(trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), trace_state)
        values = dict(attributes) if attributes else {}
        if extra:
            values.update(extra)
        span = LeanSpan(name, ids, parent, kind, values, self, start_time or time_ns(), record_exception)
        span.links = list(links or ())
        self.processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanSpan(trace.Span, ReadableSpan):
    """A recording span that is its own readable span: processors and exporters get it
    as it is when it ends. Its attributes are a plain dict, set by the one thread that
    answers its request."""

    def __init__(
        self,
        name: str,
        ids: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        tracer: LeanTracer,
        start_time: int,
        record_exception: bool,
    ) -> None:
        # ReadableSpan's fields, set directly (its constructor would build a resource).
        self._name = name
        self._context = ids
        self._kind = kind
        self._parent = parent
        self._attributes = attributes
        self._events: list[Event] = []
        self._links: list[trace.Link] = []
        self._resource = tracer.resource
        self._status = _UNSET
        self._start_time = start_time
        self._end_time: int | None = None
        self._instrumentation_info = None
        self._instrumentation_scope = tracer.scope
        self._processor = tracer.processor
        self._record_exception = record_exception

    @property
    def links(self) -> Sequence[trace.Link]:  # type: ignore[override]
        return tuple(self._links)

    @links.setter
    def links(self, links: list[trace.Link]) -> None:
        self._links = links

    @property
    def values(self) -> dict[str, Any]:
        """The attributes themselves (``attributes`` wraps them read-only)."""
        return self._attributes

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            self._events.append(Event(name, dict(attributes or {}), timestamp or time_ns()))

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links.append(trace.Link(context, dict(attributes or {})))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        described = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", described, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or time_ns()
        self._processor.on_end(self)


class TraceRequests:
    """Falcon middleware: a server span around each request, continuing the caller's
    trace when it sent ``traceparent``. Installed first, so everything else the request
    does (its log lines included) happens inside the span.

    Every request of every service passes here, so it does the least the SDK allows:
    the span starts with the attributes known then and gets the rest in one call at
    the end, and the span is made current without a context manager."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.propagator = propagate.get_global_textmap()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        parent = self.propagator.extract(req, getter=_HEADERS)
        span = self.tracer.start_span(
            req.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": req.method, "url.path": req.path},
        )
        req.context.span = span
        req.context.trace_token = context.attach(trace.set_span_in_context(span, parent))

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        route = plain_template(req.uri_template)
        if route:
            span: Span = req.context.span
            span.update_name(f"{req.method} {route}")
            span.set_attribute("http.route", route)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        span: Span | None = getattr(req.context, "span", None)
        if span is None:
            return
        status = resp.status_code
        described: dict[str, Any] = {"http.response.status_code": status}
        if status >= 400 and isinstance(resp.media, dict) and isinstance(resp.media.get("code"), str):
            described[ERROR_CODE] = resp.media["code"]
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            described[REQUEST_ID] = request_id
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            described["error.type"] = str(status)
        span.set_attributes(described)
        context_of_span = span.get_span_context()
        if context_of_span.is_valid:
            # The trace this answer belongs to (W3C Trace Context Level 2), so a client
            # can hand its operator the ID that finds the run.
            flags = int(context_of_span.trace_flags)
            resp.set_header(
                "traceresponse", f"00-{context_of_span.trace_id:032x}-{context_of_span.span_id:016x}-{flags:02x}"
            )
        span.end()
        context.detach(req.context.trace_token)


class _RequestHeaders:
    """A Falcon request's headers as a propagator reads them (``get`` by lower-case
    name)."""

    def get(self, carrier: falcon.Request, key: str) -> list[str] | None:
        value = carrier.get_header(key)
        return None if value is None else [value]

    def keys(self, carrier: falcon.Request) -> list[str]:
        return [name.lower() for name in carrier.headers]


_HEADERS = _RequestHeaders()


@attrs.define(slots=True)
class ClientCall:
    """A client span made current around one internal call (:func:`start_client_span`)."""

    span: Span
    token: object


def start_client_span(
    tracer: trace.Tracer, target: str, method: str, route: str, host: str, headers: MutableMapping[str, str]
) -> ClientCall:
    """A client span for one internal call, made current, its trace context injected
    into the call's ``headers``; end it with :func:`end_client_span`."""
    span = tracer.start_span(
        f"{method} {route}",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.template": route, "server.address": host, TARGET: target},
        record_exception=False,
        set_status_on_exception=False,
    )
    token = context.attach(trace.set_span_in_context(span))
    propagate.inject(headers)
    return ClientCall(span, token)


def end_client_span(call: ClientCall, reply: Any, raw: Any, failure: Any) -> None:
    """Describe the call's answer on its span (:func:`describe_call`), and end it."""
    try:
        describe_call(call.span, reply, raw, failure)
    finally:
        context.detach(call.token)
        call.span.end()


def server_ms(headers: Mapping[str, str]) -> float | None:
    """The callee's own time from its ``Server-Timing: app;dur=…`` entry."""
    for entry in headers.get("Server-Timing", "").split(","):
        name, _, rest = entry.strip().partition(";")
        if name == "app" and rest.startswith("dur="):
            try:
                return float(rest[4:])
            except ValueError:
                return None
    return None


def describe_call(span: Span, reply: Any, raw: Any, failure: Any) -> None:
    """A client span's answer: the status, the callee's own time and the calls it
    reported, an error body's code and title; or why the call failed."""
    described: dict[str, Any] = {}
    if raw is not None:
        described["http.response.status_code"] = raw.status
        timing = raw.headers.get("Server-Timing") or ""
        own = server_ms(raw.headers)
        if own is not None:
            described[SERVER_MS] = own
        if "c1;" in timing:
            described[CALLEE_CALLS] = timing
    error = reply.error if reply is not None else None
    if error is not None:
        described[ERROR_CODE] = error.code
        described[STATUS_TEXT] = error.title
    if failure is not None:
        described["error.type"] = failure.reason
        span.set_status(Status(StatusCode.ERROR, failure.detail[:200]))
    span.set_attributes(described)


def inject(headers: MutableMapping[str, str]) -> None:
    """``traceparent`` (and ``tracestate``) of the current span, for the next hop."""
    propagate.inject(headers)


def current_trace_id() -> str:
    """The current trace's ID as 32 hex digits, or ``-`` outside a trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return "-"
    return format(span_context.trace_id, "032x")


# -- the calls a service made while answering, for its caller -----------------------------


@attrs.frozen
class Outbound:
    """One call this service made while answering a request: reported to its caller in
    ``Server-Timing``, so a caller without a trace collector still sees the hop behind
    the one it made (the gateway's console draws Notifications' call to Profiles)."""

    target: str
    method: str
    route: str
    start_ms: float
    duration_ms: float
    status: int | None
    server_ms: float | None = None
    reason: str | None = None


@attrs.define
class CallLog:
    """The calls made while answering one request, timed from its start."""

    started: float
    calls: list[Outbound] = attrs.Factory(list)


# The request being answered, when the service reports its calls.
outbound_var: contextvars.ContextVar[CallLog | None] = contextvars.ContextVar("outbound", default=None)


def timing_entries(calls: Iterable[Outbound]) -> list[str]:
    """``Server-Timing`` entries, one per call: ``c1;dur=0.83;desc="GET /profiles/{user_id}";
    to=profiles;start=0.12;status=200;own=0.55`` (``reason=timeout`` for a call that got
    no answer)."""
    entries = []
    for number, call in enumerate(calls, 1):
        entry = (
            f'c{number};dur={call.duration_ms:.2f};desc="{call.method} {call.route}";'
            f"to={call.target};start={call.start_ms:.2f}"
        )
        if call.status is not None:
            entry += f";status={call.status}"
        if call.server_ms is not None:
            entry += f";own={call.server_ms:.2f}"
        if call.reason is not None:
            entry += f";reason={call.reason}"
        entries.append(entry)
    return entries


_ENTRY = re.compile(r'^c\d+;dur=([0-9.]+);desc="([A-Z]+) ([^"]*)";to=([a-z]+);start=([0-9.]+)(.*)$')


def parse_timing_calls(header: str) -> list[Outbound]:
    """The calls a callee reported in its ``Server-Timing`` (see :func:`timing_entries`);
    entries of another shape are left alone."""
    calls = []
    for entry in header.split(", "):
        match = _ENTRY.match(entry.strip())
        if match is None:
            continue
        duration, method, route, target, start, rest = match.groups()
        extra = dict(part.split("=", 1) for part in rest.split(";") if "=" in part)
        status = extra.get("status")
        own = extra.get("own")
        calls.append(
            Outbound(
                target=target,
                method=method,
                route=route,
                start_ms=float(start),
                duration_ms=float(duration),
                status=int(status) if status and status.isdigit() else None,
                server_ms=float(own) if own else None,
                reason=extra.get("reason"),
            )
        )
    return calls
