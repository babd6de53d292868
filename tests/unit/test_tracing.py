"""Tracing's own parts: what the OTEL_* settings switch on, and the calls a service
reports in Server-Timing, written and read back."""

from __future__ import annotations

import pytest
from opentelemetry.trace import NoOpTracer

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
