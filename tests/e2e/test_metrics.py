"""Prometheus metrics: counts that follow what the services really served."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.tools.supervisor import Stack
from tests.harness import Gateway


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_orders_steps_and_requests(gateway: Gateway, stack: Stack) -> None:
    customer = gateway.customer(deposit=1_000)
    before_gateway = scrape(stack.urls["gateway"])
    before_billing = scrape(stack.urls["billing"])
    statuses = [gateway.order(customer, price=400).json()["order"]["status"] for _ in range(3)]
    assert statuses == ["paid", "paid", "cancelled"]

    after = scrape(stack.urls["gateway"])
    assert (
        value(after, "syncorders_orders_total", status="paid")
        - value(before_gateway, "syncorders_orders_total", status="paid")
        == 2
    )
    assert (
        value(after, "syncorders_orders_total", status="cancelled")
        - value(before_gateway, "syncorders_orders_total", status="cancelled")
        == 1
    )
    for number, name in ((3, "create_order"), (5, "pay"), (7, "update_status"), (9, "notify")):
        labels = {"step": str(number), "name": name}
        assert (
            value(after, "syncorders_flow_step_outcomes_total", outcome="ok", **labels)
            - value(before_gateway, "syncorders_flow_step_outcomes_total", outcome="ok", **labels)
            == 3
        )
        assert (
            value(after, "syncorders_flow_step_duration_seconds_count", **labels)
            - value(before_gateway, "syncorders_flow_step_duration_seconds_count", **labels)
            == 3
        )
    created = {"service": "gateway", "method": "POST", "route": "/orders", "status": "201"}
    assert (
        value(after, "syncorders_http_requests_total", **created)
        - value(before_gateway, "syncorders_http_requests_total", **created)
        == 3
    )

    billing = scrape(stack.urls["billing"])
    paid = {"service": "billing", "method": "POST", "route": "/payments"}
    assert (
        value(billing, "syncorders_http_requests_total", status="201", **paid)
        - value(before_billing, "syncorders_http_requests_total", status="201", **paid)
        == 2
    )
    assert (
        value(billing, "syncorders_http_requests_total", status="406", **paid)
        - value(before_billing, "syncorders_http_requests_total", status="406", **paid)
        == 1
    )
    assert (
        value(billing, "syncorders_http_request_duration_seconds_count", **paid)
        - value(before_billing, "syncorders_http_request_duration_seconds_count", **paid)
        == 3
    )


def test_unmatched_paths_share_one_label(gateway: Gateway, stack: Stack) -> None:
    for path in ("/nope-1", "/nope-2", "/nope-3"):
        assert gateway.request("GET", path).status_code == 404
    samples = scrape(stack.urls["gateway"])
    routes = {dict(labels)["route"] for (name, labels) in samples if name == "syncorders_http_requests_total"}
    assert "unmatched" in routes and not any(route.startswith("/nope") for route in routes)
