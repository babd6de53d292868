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
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import attrs
import falcon
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

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
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.exporting = self.enabled and exports(env)
        if self.exporting:
            # Imported only when used: the exporter brings protobuf and an HTTP client.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer(SCOPE)

    def shutdown(self) -> None:
        """Flush what is batched for export; called when the service stops."""
        self.provider.shutdown()


def exports(env: Mapping[str, str]) -> bool:
    """An OTLP endpoint is configured and export is not switched off."""
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(env.get(name) for name in EXPORT_ENDPOINTS)


NO_TRACING = trace.NoOpTracer()


class TraceRequests:
    """Falcon middleware: a server span around each request, continuing the caller's
    trace when it sent ``traceparent``. Installed first, so everything else the request
    does (its log lines included) happens inside the span."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        parent = propagate.extract(_Headers(req))
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
        span.set_attribute("http.response.status_code", status)
        if status >= 400 and isinstance(resp.media, dict) and isinstance(resp.media.get("code"), str):
            span.set_attribute(ERROR_CODE, resp.media["code"])
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            span.set_attribute(REQUEST_ID, request_id)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))
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


class _Headers:
    """A request's headers as the propagator reads them (``get`` by lower-case name)."""

    def __init__(self, req: falcon.Request) -> None:
        self.req = req

    def get(self, name: str, default: Any = None) -> Any:
        value = self.req.get_header(name)
        return default if value is None else [value]

    def keys(self) -> list[str]:
        return [name.lower() for name in self.req.headers]


@contextlib.contextmanager
def client_span(tracer: trace.Tracer, target: str, method: str, route: str, host: str) -> Iterator[Span]:
    """A client span around one internal call; the caller injects the trace context
    into the call's headers from inside it (:func:`inject`)."""
    with tracer.start_as_current_span(
        f"{method} {route}",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.template": route, "server.address": host, TARGET: target},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


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
    if raw is not None:
        span.set_attribute("http.response.status_code", raw.status)
        timing = raw.headers.get("Server-Timing") or ""
        own = server_ms(raw.headers)
        if own is not None:
            span.set_attribute(SERVER_MS, own)
        if "c1;" in timing:
            span.set_attribute(CALLEE_CALLS, timing)
    error = reply.error if reply is not None else None
    if error is not None:
        span.set_attribute(ERROR_CODE, error.code)
        span.set_attribute(STATUS_TEXT, error.title)
    if failure is not None:
        span.set_attribute("error.type", failure.reason)
        span.set_status(Status(StatusCode.ERROR, failure.detail[:200]))


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
