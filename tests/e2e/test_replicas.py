"""Replicas side by side: two gateways and two replicas each of Orders and Billing behind
nginx, which every caller (client and services) goes through. Nothing may depend on which
replica answers: the concurrency run's invariants hold and every replica served traffic.

Runs on the harness's database: SQLite files shared by the replicas, or PostgreSQL when
the run asks for it (the tox ``postgres`` environment).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from orchestrator.tools.supervisor import START_ORDER, Stack
from tests.balancer import NGINX, Balancer, free_port
from tests.e2e.test_metrics import scrape, value
from tests.harness import Gateway, stack_settings
from tests.invariants import assert_invariants

REPLICAS = {"gateway": 2, "orders": 2, "billing": 2}
ORDERS = 60
PRICE = 100


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, str]]]:
    if NGINX is None:
        pytest.fail("the replica test needs nginx: apt-get install -y nginx")
    root: Path = tmp_path_factory.mktemp("replicas")
    listen = {service: free_port() for service in START_ORDER}
    balanced = {service: f"http://127.0.0.1:{port}" for service, port in listen.items()}
    # Every service's URL is nginx's: callers never see a replica directly.
    stack = Stack(stack_settings(root, urls=balanced), log_dir=root / "logs")
    backends: dict[str, list[int]] = {service: [] for service in START_ORDER}
    balancer = None
    try:
        for service in START_ORDER:
            for replica in range(1, REPLICAS.get(service, 1) + 1):
                process = stack.start_one(service, port=0, name=f"{service}-{replica}", publish=False)
                backends[service].append(process.port)
        balancer = Balancer(root / "nginx", listen, backends)
        yield stack, balanced
    finally:
        if balancer is not None:
            balancer.stop()
        stack.stop()


def test_replicas_behind_nginx_keep_every_invariant_and_share_the_load(
    replicated: tuple[Stack, dict[str, str]],
) -> None:
    stack, balanced = replicated
    gateway = Gateway(balanced["gateway"])
    customer = gateway.customer(deposit=10 * PRICE)

    def one(_: int) -> requests.Response:
        return Gateway(balanced["gateway"]).order(customer, price=PRICE)

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(one, range(ORDERS)))

    assert [reply.status_code for reply in replies] == [201] * ORDERS, {r.status_code: r.text for r in replies}
    statuses = sorted(reply.json()["order"]["status"] for reply in replies)
    assert statuses == ["cancelled"] * (ORDERS - 10) + ["paid"] * 10
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 0
    state = assert_invariants(stack.settings)
    assert len([op for op in state.operations if op.kind == "payment"]) == 10
    assert sorted(letter.kind for letter in state.letters) == ["happy"] * 10 + ["sad"] * (ORDERS - 10)

    for name, route, method in (
        ("gateway", "/orders", "POST"),
        ("orders", "/orders", "POST"),
        ("billing", "/payments", "POST"),
    ):
        for replica in (1, 2):
            process = stack.processes[f"{name}-{replica}"]
            samples = scrape(process.url)
            served = sum(
                count
                for (metric, labels), count in samples.items()
                if metric == "syncorders_http_requests_total"
                and dict(labels).get("route") == route
                and dict(labels).get("method") == method
            )
            assert served > 0, f"{name}-{replica} served no {method} {route}"
    assert (
        value(scrape(stack.processes["gateway-1"].url), "syncorders_orders_total", status="paid")
        + value(scrape(stack.processes["gateway-2"].url), "syncorders_orders_total", status="paid")
        == 10
    )
