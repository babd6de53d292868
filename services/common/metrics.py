"""Prometheus metrics: requests by route and status, and their latency, per service.

Each app has its own registry (no process-wide state), served at ``/metrics``.
"""

from __future__ import annotations

import time
from typing import Any

import falcon
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from services.common.routes import plain_template

# Milliseconds to seconds: the flow's calls sit between 1 ms and a few hundred.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "syncorders_http_requests",
            "HTTP requests served, by route and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "syncorders_http_request_duration_seconds",
            "Time to serve a request, by route",
            ["service", "method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # Labelled children, looked up once: labels() takes a lock on every call. The
        # keys are bounded: routes are templates, unmatched paths share one label.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool) -> None:
        started = getattr(req.context, "metrics_started", None)
        if started is None:
            return
        # Unmatched paths share one label, so scanners cannot blow up the label set.
        route = plain_template(req.uri_template) if resource is not None else "unmatched"
        key = (req.method, route, resp.status_code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(self.service, req.method, route, str(resp.status_code)),
                self.latency.labels(self.service, req.method, route),
            )
        children[0].inc()
        children[1].observe(time.perf_counter() - started)


class MetricsResource:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)
