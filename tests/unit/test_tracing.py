"""Tracing's own parts: what the OTEL_* settings switch on, and the calls a service
reports in Server-Timing, written and read back."""

from __future__ import annotations

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracer,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from services.common import tracing


def test_without_an_endpoint_nothing_is_exported() -> None:
    quiet = tracing.Tracing("orders", environ={})
    assert quiet.enabled and not quiet.exporting


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
    ],
)
def test_an_endpoint_exports(env: dict[str, str]) -> None:
    assert tracing.exports(env)
    assert not tracing.exports({**env, "OTEL_TRACES_EXPORTER": "none"})


def test_the_sdk_switched_off_makes_no_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    off = tracing.Tracing("orders")
    assert not off.enabled
    assert isinstance(off.tracer, NoOpTracer)


def test_a_service_is_named_after_itself_unless_otel_service_name_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert tracing.Tracing("billing").provider.resource.attributes["service.name"] == "syncorders-billing"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-eu-1")
    assert tracing.Tracing("billing").provider.resource.attributes["service.name"] == "billing-eu-1"


def test_reported_calls_are_read_back_as_written() -> None:
    calls = [
        tracing.Outbound("profiles", "GET", "/profiles/{user_id}", 0.12, 0.83, 200, 0.55),
        tracing.Outbound("billing", "PUT", "/wallets/{user_id}", 1.5, 1000.0, None, None, "timeout"),
    ]
    header = ", ".join(["app;dur=2.00", *tracing.timing_entries(calls)])

    assert tracing.parse_timing_calls(header) == [
        tracing.Outbound("profiles", "GET", "/profiles/{user_id}", 0.12, 0.83, 200, 0.55),
        tracing.Outbound("billing", "PUT", "/wallets/{user_id}", 1.5, 1000.0, None, None, "timeout"),
    ]
    assert tracing.server_ms({"Server-Timing": header}) == 2.0


def test_entries_of_another_shape_are_left_alone() -> None:
    assert tracing.parse_timing_calls('s3;desc="create_order";dur=1.2, app;dur=3, c1;nonsense') == []


# -- the lean tracer ----------------------------------------------------------------------


class Kept(tracing.SpanProcessor):
    """A processor that keeps what it is given."""

    def __init__(self) -> None:
        self.started: list[object] = []
        self.ended: list[tracing.ReadableSpan] = []

    def on_start(self, span: object, parent_context: object = None) -> None:
        self.started.append(span)

    def on_end(self, span: tracing.ReadableSpan) -> None:
        self.ended.append(span)


def _traced(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[tracing.Tracing, Kept]:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    kept = Kept()
    return tracing.Tracing("orders", processors=[kept], environ={}), kept


def test_a_span_reaches_the_processors_once_whole_with_its_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    made, kept = _traced(monkeypatch)
    tracer = made.tracer
    root = tracer.start_span("POST /orders", kind=SpanKind.SERVER, attributes={"http.request.method": "POST"})
    token = context.attach(trace.set_span_in_context(root))
    child = tracer.start_span("pay", attributes={"syncorders.step": 5})
    child.set_attributes({"syncorders.step.outcome": "ok", "http.response.status_code": 201})
    child.set_status(Status(StatusCode.ERROR, "unavailable"))
    child.end()
    child.end()
    context.detach(token)
    root.update_name("POST /orders/x")
    root.end()
    root.set_attribute("late", True)

    assert kept.started == [root, child]
    assert [span.name for span in kept.ended] == ["pay", "POST /orders/x"]
    pay, post = kept.ended
    assert pay.parent == post.context and post.parent is None
    assert pay.context.trace_id == post.context.trace_id and pay.context.span_id != post.context.span_id
    assert dict(pay.attributes) == {
        "syncorders.step": 5,
        "syncorders.step.outcome": "ok",
        "http.response.status_code": 201,
    }
    assert pay.status.status_code is StatusCode.ERROR and pay.status.description == "unavailable"
    assert "late" not in post.attributes and post.kind is SpanKind.SERVER
    assert post.start_time is not None and post.end_time is not None and post.end_time >= post.start_time
    assert post.resource is made.provider.resource
    # Sampled, with a random trace ID (W3C Trace Context Level 2), like the SDK's own.
    assert int(post.context.trace_flags) == 0x03
    assert post.instrumentation_scope is not None and post.instrumentation_scope.name == tracing.SCOPE


def test_a_remote_parent_that_is_not_sampled_makes_no_recorded_span(monkeypatch: pytest.MonkeyPatch) -> None:
    made, kept = _traced(monkeypatch)
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    span = made.tracer.start_span("GET /x", context=trace.set_span_in_context(NonRecordingSpan(parent)))
    assert not span.is_recording() and span.get_span_context().trace_id == 0xABC
    span.end()
    assert kept.ended == []


def test_the_configured_sampler_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    made, kept = _traced(monkeypatch, OTEL_TRACES_SAMPLER="always_off")
    span = made.tracer.start_span("GET /x")
    span.end()
    assert not span.is_recording() and kept.ended == []
    made, kept = _traced(monkeypatch, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="1.0")
    made.tracer.start_span("GET /x").end()
    assert len(kept.ended) == 1


def test_an_exception_is_recorded_as_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    made, kept = _traced(monkeypatch)
    with pytest.raises(ValueError), made.tracer.start_as_current_span("failing"):
        raise ValueError("broken")
    (span,) = kept.ended
    (event,) = span.events
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"
    assert span.status.status_code is StatusCode.ERROR
