"""PostgreSQL stopped under a stream of orders, and restarted: the outage looks like one.

All six services run as real processes on a PostgreSQL server of this module's own
(the shared one is never stopped). While clients keep ordering, the server is stopped
for five seconds and started again. Clients get ``201`` or a ``503`` naming the step,
reason ``unavailable``, with ``Retry-After``; the services answer ``503
database_unavailable`` and log one line per failure; ``/health`` and ``/metrics`` keep
answering, ``/ready`` names the database until it is back; no process exits. Once it is
back, orders succeed at once, the failed ones finish when sent again with their key,
and after recovery every invariant holds. A restart between requests, with every pool
warm, fails none.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest
import requests

from orchestrator.tools.supervisor import Stack
from services.common.config import INTERNAL_SERVICES, SERVICES
from tests.e2e.conftest import log_text
from tests.harness import Customer, Gateway
from tests.invariants import assert_invariants, run_recovery, snapshot
from tests.postgres import PrivateServer

PRICE = 100
CLIENTS = 4
OUTAGE = 5.0
LEASE = 2.0
STEP_OF_CODE = {
    "create_order_failed": (3, "orders"),
    "pay_failed": (5, "billing"),
    "update_status_failed": (7, "orders"),
}
# "... WARNING orders rid=… trace=… services.common.db: database unavailable on POST /orders: OperationalError: …"
OUTAGE_LINE = re.compile(
    r" WARNING \w+ rid=\S+ trace=\S+ services\.common\.db: database unavailable on [A-Z]+ /\S*: \w+: "
)
# "... INFO orders rid=… trace=… access: POST /orders 503 2.1ms", readiness probes left out.
ACCESS_503 = re.compile(r" access: (?!GET /ready )[A-Z]+ /\S* 503 ")


@pytest.fixture(scope="module")
def stack_options(private_postgres: PrivateServer) -> dict[str, Any]:
    # A short lease: an order whose run could not release it is free again soon.
    return {"databases": private_postgres.create_databases(INTERNAL_SERVICES), "order_run_lease": LEASE}


@pytest.fixture(scope="module")
def customers(stack: Stack) -> list[Customer]:
    gateway = Gateway(stack.urls["gateway"])
    return [gateway.customer(deposit=1_000_000) for _ in range(CLIENTS)]


@attrs.frozen
class Answer:
    customer: Customer
    key: str
    status: int
    retry_after: str | None
    body: dict[str, object]
    at: float
    request_id: str


def order(gateway: Gateway, customer: Customer, key: str | None = None) -> Answer:
    key = key or f"outage-{uuid.uuid4()}"
    reply = gateway.order(customer, PRICE, key=key)
    try:
        body = reply.json()
    except ValueError:
        body = {"text": reply.text}
    return Answer(
        customer,
        key,
        reply.status_code,
        reply.headers.get("Retry-After"),
        body,
        time.monotonic(),
        reply.headers.get("X-Request-ID", ""),
    )


def log_offsets(stack: Stack) -> dict[str, int]:
    return {service: len(log_text(stack, service)) for service in SERVICES}


def new_log(stack: Stack, offsets: dict[str, int], service: str) -> str:
    return log_text(stack, service)[offsets[service] :]


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=10)


def test_a_restart_between_requests_fails_none(
    stack: Stack, customers: list[Customer], private_postgres: PrivateServer
) -> None:
    """Every pool holds several connections; PostgreSQL restarts; the next orders all
    succeed at the first attempt (no service answered 503, none logged an outage)."""
    gateways = [Gateway(stack.urls["gateway"]) for _ in customers]

    def burst() -> list[Answer]:
        with ThreadPoolExecutor(len(customers)) as pool:
            return list(pool.map(lambda pair: order(*pair), zip(gateways * 2, customers * 2, strict=True)))

    assert [a.status for a in burst()] == [201] * 2 * len(customers)
    stack_pids = {name: process.popen.pid for name, process in stack.processes.items()}
    offsets = log_offsets(stack)
    private_postgres.stop()
    private_postgres.start()
    answers = burst()
    assert [a.status for a in answers] == [201] * 2 * len(customers), [a.body for a in answers if a.status != 201]
    for service in INTERNAL_SERVICES:
        text = new_log(stack, offsets, service)
        assert not ACCESS_503.search(text) and "database unavailable" not in text, text
    assert {name: process.popen.pid for name, process in stack.processes.items()} == stack_pids


def probe_while_down(stack: Stack) -> None:
    """Liveness and metrics of every service answer; readiness of every service with a
    database names it."""
    for service in SERVICES:
        base = stack.urls[service]
        assert get(base + "/health").status_code == 200, service
        metrics = get(base + "/metrics")
        assert metrics.status_code == 200 and "syncorders_http_requests_total" in metrics.text, service
    for service in INTERNAL_SERVICES:
        ready = get(stack.urls[service] + "/ready")
        assert ready.status_code == 503, (service, ready.text)
        assert ready.json()["checks"]["database"].startswith("failed: unavailable"), (service, ready.text)


def check_failed_answer(answer: Answer) -> None:
    """A 503 from the flow: the step and service, reason ``unavailable``, Retry-After."""
    body = answer.body
    assert body.get("code") in STEP_OF_CODE, body
    step, service = STEP_OF_CODE[str(body["code"])]
    assert (body["step"], body["reason"], body["service"]) == (step, "unavailable", service), body
    assert answer.retry_after is not None and answer.retry_after.isdigit(), answer


def finish(gateway: Gateway, answer: Answer, budget: float = 20.0) -> Answer:
    """The same request with the same key until it finishes; ``409 in_progress`` means
    the run that failed still holds the order (for the lease)."""
    deadline = time.monotonic() + budget
    while True:
        again = order(gateway, answer.customer, answer.key)
        if again.status == 201 or time.monotonic() > deadline:
            return again
        assert again.status == 409 and again.body["code"] == "in_progress", again
        time.sleep(LEASE / 4)


def test_postgres_stopped_under_a_stream_of_orders(
    stack: Stack, customers: list[Customer], private_postgres: PrivateServer
) -> None:
    server = private_postgres
    orders_before = len(snapshot(stack.settings).orders)
    pids = {name: process.popen.pid for name, process in stack.processes.items()}
    offsets = log_offsets(stack)
    answers: list[Answer] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(customer: Customer) -> None:
        gateway = Gateway(stack.urls["gateway"])
        for _ in range(300):
            if stop.is_set():
                return
            answer = order(gateway, customer)
            with lock:
                answers.append(answer)
            time.sleep(0.02)

    def count(status: int, since: float = 0.0) -> int:
        with lock:
            return sum(1 for a in answers if a.status == status and a.at >= since)

    def wait_for(condition: Callable[[], bool], budget: float) -> None:
        deadline = time.monotonic() + budget
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(customer,)) for customer in customers]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: count(201) >= 2 * CLIENTS, 15)
        assert count(201) >= 2 * CLIENTS, "orders flow before the outage"
        server.stop()
        stopped = time.monotonic()
        probe_while_down(stack)
        wait_for(lambda: count(503) >= 1 and time.monotonic() - stopped >= OUTAGE, 30)
        assert count(503) >= 1, "clients met the outage"
        probe_while_down(stack)
        server.start()
        restarted = time.monotonic()
        # Back at once: readiness, and a new order at its first attempt.
        for service in INTERNAL_SERVICES:
            assert get(stack.urls[service] + "/ready").status_code == 200, service
        first = order(Gateway(stack.urls["gateway"]), customers[0])
        assert first.status == 201, first
        wait_for(lambda: count(201, since=restarted) >= CLIENTS, 15)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        if not server.running():
            server.start()

    statuses = {a.status for a in answers}
    assert statuses <= {201, 503}, [a.body for a in answers if a.status not in (201, 503)]
    failed = [a for a in answers if a.status == 503]
    for answer in failed:
        check_failed_answer(answer)
    assert count(201, since=restarted) >= CLIENTS, "clients order again once the database is back"

    assert stack.crashed() == []
    assert {name: process.popen.pid for name, process in stack.processes.items()} == pids
    for service in INTERNAL_SERVICES:
        text = new_log(stack, offsets, service)
        assert "Traceback" not in text and "internal_error" not in text and "unhandled error" not in text, service
        # One line for each failure: a 503 a service answered for its own database has
        # its line. (Notifications also answers 503 when Profiles is the one that failed.)
        outages, answered = len(OUTAGE_LINE.findall(text)), len(ACCESS_503.findall(text))
        if service == "notifications":
            assert outages <= answered, (service, text[-3000:])
        else:
            assert outages == answered, (service, text[-3000:])
        # The first order once the database was back went through without a retry.
        assert not re.search(rf"rid={re.escape(first.request_id)} trace=\S+ access: [A-Z]+ /\S* 503 ", text), service
    orders_log = new_log(stack, offsets, "orders")
    assert first.request_id and re.search(
        rf"rid={re.escape(first.request_id)} trace=\S+ access: POST /orders 201 ", orders_log
    )
    assert OUTAGE_LINE.search(orders_log), "Orders answered database_unavailable"

    gateway = Gateway(stack.urls["gateway"])
    for answer in failed:
        again = finish(gateway, answer)
        assert again.status == 201, again
    report = run_recovery(stack)
    assert report.exit_code == 0 and report.failures == 0, report.output
    state = assert_invariants(stack.settings)
    # One order per key sent (and the one sent first after the restart): none lost, none twice.
    assert len(state.orders) == orders_before + len({a.key for a in answers}) + 1
