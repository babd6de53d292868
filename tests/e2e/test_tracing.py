"""Traces across the six services, exported over OTLP/HTTP to a receiver this test runs
and decoded with opentelemetry-proto: one order is one trace with spans of every
service, each call's client span the parent of its callee's server span, the gateway's
step spans in the flow's order, a failed step marked with its reason, a client's own
trace continued, and the trace ID on the services' log lines."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from orchestrator.tools.supervisor import Stack
from tests.e2e.conftest import log_text
from tests.harness import Gateway, start_stack

SERVICES = {"gateway", "auth", "profiles", "orders", "billing", "notifications"}
STEPS = ["authorize", "create_order", "pay", "update_status", "notify", "respond"]


@attrs.frozen
class Received:
    service: str
    span: Span

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    def attribute(self, name: str) -> Any:
        for pair in self.span.attributes:
            if pair.key == name:
                value = pair.value
                return getattr(value, value.WhichOneof("value"))
        return None


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span the services export."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    for resource in request.resource_spans:
                        names = [
                            kv.value.string_value for kv in resource.resource.attributes if kv.key == "service.name"
                        ]
                        for scope in resource.scope_spans:
                            collector.spans.extend(Received(names[0], span) for span in scope.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def trace(self, trace_id: str, services: set[str], timeout: float = 15.0) -> list[Received]:
        """The trace's spans, once every one of ``services`` has sent some."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [span for span in self.spans if span.trace_id == trace_id]
            if services <= {span.service.removeprefix("syncorders-") for span in found}:
                # Spans end inside out: give the last batch a moment to arrive whole.
                time.sleep(0.5)
                with self.lock:
                    return [span for span in self.spans if span.trace_id == trace_id]
            if time.monotonic() > deadline:
                seen = sorted({span.service for span in found})
                raise AssertionError(f"trace {trace_id}: spans only from {seen}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    receiver = Collector()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, collector: Collector) -> Iterator[Stack]:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    stack = start_stack(tmp_path_factory.mktemp("traced"), env=env)
    yield stack
    stack.stop()


def _trace_of(headers: Any) -> str:
    """The trace ID of an answer's ``traceresponse`` header."""
    version, trace_id, _span, _flags = headers["traceresponse"].split("-")
    assert version == "00"
    return trace_id


def test_one_order_is_one_trace_across_all_six_services(traced: Stack, collector: Collector) -> None:
    gateway = Gateway(traced.urls["gateway"])
    # The order is the customer's first request with a token: the gateway fetches Auth's
    # keys within it, so Auth too has a span in the order's trace.
    customer = gateway.customer()

    reply = gateway.order(customer, price=500)

    assert reply.status_code == 201 and reply.json()["order"]["status"] == "cancelled"
    spans = collector.trace(_trace_of(reply.headers), SERVICES)
    by_id = {span.span_id: span for span in spans}
    assert {span.service for span in spans} == {f"syncorders-{name}" for name in SERVICES}

    [root] = [span for span in spans if span.parent_id == "" or span.parent_id not in by_id]
    assert (root.service, root.span.name, root.span.kind) == (
        "syncorders-gateway",
        "POST /orders",
        Span.SPAN_KIND_SERVER,
    )
    assert root.attribute("http.request.method") == "POST" and root.attribute("url.path") == "/orders"
    assert root.attribute("http.route") == "/orders" and root.attribute("http.response.status_code") == 201

    servers = [span for span in spans if span.span.kind == Span.SPAN_KIND_SERVER and span is not root]
    clients = [span for span in spans if span.span.kind == Span.SPAN_KIND_CLIENT]
    assert len(servers) == len(clients) >= 6
    for server in servers:
        caller = by_id[server.parent_id]
        assert caller.span.kind == Span.SPAN_KIND_CLIENT and caller.service != server.service
        assert caller.attribute("syncorders.target") == server.service.removeprefix("syncorders-")
        assert caller.attribute("http.response.status_code") == server.attribute("http.response.status_code")
        assert caller.attribute("http.request.method") == server.attribute("http.request.method")

    steps = sorted(
        (span for span in spans if span.service == "syncorders-gateway" and span.attribute("syncorders.step.number")),
        key=lambda span: span.span.start_time_unix_nano,
    )
    assert [span.span.name for span in steps] == STEPS
    assert [span.attribute("syncorders.step.number") for span in steps] == [2, 3, 5, 7, 9, 11]
    assert all(span.attribute("syncorders.step.outcome") == "ok" and span.parent_id == root.span_id for span in steps)
    # Each call hangs under the step that made it.
    step_of = {span.span_id: span.span.name for span in steps}
    made = [
        (step_of.get(client.parent_id), client.span.name)
        for client in clients
        if client.service == "syncorders-gateway"
    ]
    assert ("create_order", "POST /orders") in made and ("pay", "POST /payments") in made
    assert ("update_status", "PUT /orders/{order_id}/status") in made and ("notify", "POST /letters") in made

    log = log_text(traced, "gateway")
    assert f"trace={root.trace_id}" in log


def test_a_failed_step_carries_its_reason(traced: Stack, collector: Collector) -> None:
    gateway = Gateway(traced.urls["gateway"])
    customer = gateway.customer(deposit=1_000)
    traced.kill("billing")
    try:
        reply = gateway.order(customer, price=500, key=f"down-{uuid.uuid4()}")
    finally:
        traced.start_one("billing")

    assert reply.status_code == 503 and reply.json()["reason"] == "unavailable"
    spans = collector.trace(_trace_of(reply.headers), {"gateway", "orders"})
    [pay] = [span for span in spans if span.span.name == "pay"]
    assert pay.attribute("syncorders.step.outcome") == "unavailable"
    assert pay.span.status.code == Status.STATUS_CODE_ERROR
    attempts = [span for span in spans if span.parent_id == pay.span_id]
    assert attempts and all(span.attribute("error.type") == "unavailable" for span in attempts)
    assert not [span for span in spans if span.span.name in ("update_status", "notify")]


def test_a_clients_own_trace_is_continued(traced: Stack, collector: Collector) -> None:
    gateway = Gateway(traced.urls["gateway"])
    customer = gateway.customer(deposit=1_000)
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    headers = {"traceparent": f"00-{trace_id}-{parent}-01", "Authorization": f"Bearer {customer.token}"}
    body = {"user_id": customer.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]}

    reply = gateway.http.post(gateway.base + "/orders", json=body, headers=headers, timeout=30)

    assert reply.status_code == 201 and _trace_of(reply.headers) == trace_id
    spans = collector.trace(trace_id, {"gateway", "orders", "billing", "notifications", "profiles"})
    [root] = [
        span for span in spans if span.service == "syncorders-gateway" and span.span.kind == Span.SPAN_KIND_SERVER
    ]
    assert root.parent_id == parent
