"""Graceful shutdown and rolling restarts, on real processes.

A service told to stop (SIGTERM or SIGINT) answers ``/ready`` 503 at once, keeps its
listener open for the shutdown delay, then refuses new connections, finishes what is in
flight (answered with ``Connection: close``) and exits 0, also as PID 1 of a PID
namespace, as in a container. Orders in flight when the gateway or Billing is stopped
complete; one that outlives the deadline is cut and finished by the same request sent
again. Every service restarted one replica at a time behind nginx costs no client a
single error; restarted one by one with no second replica, a client that sends a
refused or failed request again with its Idempotency-Key loses nothing.

Orders are held in flight for as long as a test needs by a lock the test takes on
Billing's wallet table: the payment waits for it, the lock's release lets it finish.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests

from orchestrator.tools.supervisor import START_ORDER, Stack, _await_listening
from services.common.config import Settings
from tests.balancer import KEEPALIVE_TIMEOUT, NGINX, Balancer, free_port
from tests.e2e.test_faults import SLOW, Fault, FaultProxy
from tests.harness import Customer, Gateway, stack_settings, start_stack
from tests.invariants import assert_invariants, run_recovery, snapshot

# The listener stays open this long after the signal; then what is in flight has the
# timeout. A lock held past both makes a request outlive the deadline, well inside
# SQLite's 5 s wait for a lock.
DELAY = 1.0
TIMEOUT = 2.0
LEASE = 1.0
REFUSED = "refused"


def _wait_for(condition: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what} within {within} s")


def _probe(port: int) -> tuple[int, str] | str:
    """``/ready`` on a new connection: its status and body's ``status``, or refused."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/ready")
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())["status"]
    except ConnectionRefusedError:
        return REFUSED
    finally:
        conn.close()


def _probe_until_refused(port: int, within: float) -> list[tuple[int, str] | str]:
    """What ``/ready`` answers on new connections until they are refused."""
    seen: list[tuple[int, str] | str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        seen.append(_probe(port))
        if seen[-1] == REFUSED:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"port {port} still takes connections {within} s after the signal: {seen[-3:]}")


@contextlib.contextmanager
def _wallets_locked(settings: Settings) -> Iterator[None]:
    """Billing's debits wait while this holds a write lock: on the whole database on
    SQLite, on the wallet table on PostgreSQL (where reads go on)."""
    url = settings.database("billing")
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg2

    pg = psycopg2.connect(url)
    try:
        with pg.cursor() as cur:
            cur.execute('LOCK TABLE "wallet" IN EXCLUSIVE MODE')
        yield
    finally:
        pg.rollback()
        pg.close()


# -- an order in flight when its service is stopped --------------------------------------


@attrs.frozen
class Draining:
    stack: Stack
    billing: FaultProxy

    def restart(self, service: str) -> None:
        self.stack.start_one(service)
        # Callers started later must keep reaching Billing through the proxy.
        self.stack.urls["billing"] = self.billing.url
        _wait_for(lambda: _probe(self.stack.ports[service]) == (200, "ready"), 15, f"{service} not ready")


@pytest.fixture(scope="module")
def draining(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Draining]:
    """A stack whose callers reach Billing through a proxy that counts the payments, so a
    test knows when one is under way."""
    settings = {
        "shutdown_delay": DELAY,
        "shutdown_timeout": TIMEOUT,
        "order_run_lease": LEASE,
        "http_read_timeout": 10.0,
    }
    stack = start_stack(
        tmp_path_factory.mktemp("draining"), ("profiles", "billing", "orders", "notifications"), **settings
    )
    # Slow by nothing: each payment is passed on and counted.
    proxy = FaultProxy(stack.urls["billing"], delay=0.0)
    proxy.fault = Fault("POST", "/payments", SLOW)
    try:
        stack.urls["billing"] = proxy.url
        stack.start(("auth", "gateway"))
        yield Draining(stack, proxy)
    finally:
        stack.stop()
        proxy.close()


def _order_held_at_billing(env: Draining, pool: ThreadPoolExecutor, customer: Customer, key: str) -> Any:
    """Send an order and return once its payment is on its way to Billing (and waiting
    there for the wallet lock)."""
    before = env.billing.hits
    gateway = Gateway(env.stack.urls["gateway"])
    pending = pool.submit(gateway.order, customer, 300, key=key)
    _wait_for(lambda: env.billing.hits > before or pending.done(), 15, "the payment did not reach Billing")
    assert not pending.done(), pending.result().text
    return pending


@pytest.mark.parametrize("service", ["gateway", "billing"])
def test_an_order_in_flight_completes_while_its_service_drains(draining: Draining, service: str) -> None:
    stack = draining.stack
    customer = Gateway(stack.urls["gateway"]).customer(deposit=1_000)
    process = stack.processes[service]
    with ThreadPoolExecutor(max_workers=1) as pool:
        with _wallets_locked(stack.settings):
            pending = _order_held_at_billing(draining, pool, customer, f"drain-{uuid.uuid4()}")
            if service == "billing":
                time.sleep(0.2)  # the proxy has passed the payment on
            signalled = time.monotonic()
            process.popen.send_signal(signal.SIGTERM)

            seen = _probe_until_refused(process.port, within=DELAY + 5)
            refused_after = time.monotonic() - signalled
            assert not pending.done(), "the order finished while the lock was held"

        reply = pending.result(timeout=15)
        assert process.popen.wait(timeout=TIMEOUT + 5) == 0

    # Not ready from the signal on, while the listener stayed open for the delay.
    assert seen[:-1] and set(seen[:-1]) == {(503, "draining")}, seen
    assert refused_after >= DELAY * 0.9, refused_after
    assert reply.status_code == 201, reply.text
    assert reply.json()["order"]["status"] == "paid" and reply.json()["letter_pending"] is False
    if service == "gateway":
        assert reply.headers["Connection"] == "close"
    assert "drained in" in (Path(stack.settings.data_dir) / "logs" / f"{service}.log").read_text()
    draining.restart(service)
    assert Gateway(stack.urls["gateway"]).order(customer, price=100).status_code == 201


def test_an_order_that_outlives_the_deadline_is_cut_and_finished_by_the_same_request(draining: Draining) -> None:
    stack = draining.stack
    customer = Gateway(stack.urls["gateway"]).customer(deposit=1_000)
    key = f"cut-{uuid.uuid4()}"
    process = stack.processes["gateway"]
    with ThreadPoolExecutor(max_workers=1) as pool, _wallets_locked(stack.settings):
        pending = _order_held_at_billing(draining, pool, customer, key)
        signalled = time.monotonic()
        process.popen.send_signal(signal.SIGTERM)
        # Cut at the deadline, and the exit is still clean.
        code = process.popen.wait(timeout=DELAY + TIMEOUT + 5)
        stopped_after = time.monotonic() - signalled
        with pytest.raises(requests.ConnectionError):
            pending.result(timeout=5)

    assert code == 0
    assert DELAY + TIMEOUT <= stopped_after < DELAY + TIMEOUT + 3, stopped_after
    log = (Path(stack.settings.data_dir) / "logs" / "gateway.log").read_text()
    assert "requests in flight cut by the 2.0 s deadline: 1" in log
    draining.restart("gateway")
    gateway = Gateway(stack.urls["gateway"])
    # The cut run holds the order until its lease ends: 409 in_progress until then.
    again = _wait_for(lambda: _201_or_none(gateway.order(customer, price=300, key=key)), 15, "no 201 on retry")
    assert again.json()["order"]["status"] == "paid"
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 700


def _201_or_none(reply: requests.Response) -> requests.Response | None:
    if reply.status_code == 201:
        return reply
    assert reply.status_code == 409 and reply.json()["code"] == "in_progress", reply.text
    return None


# -- PID 1, SIGINT, a second signal ------------------------------------------------------


SERVE_PROFILES = (sys.executable, "-m", "orchestrator.tools.cli", "serve", "profiles", "--port", "0")


def _unshare_works() -> bool:
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_as_pid_1_a_signal_drains_closes_idle_connections_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    if not _unshare_works():
        pytest.skip("needs unshare --pid (root or user namespaces)")
    settings = stack_settings(tmp_path, shutdown_delay=DELAY)
    env = Stack(settings).env()
    outer = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *SERVE_PROFILES],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        port = int(_await_listening(outer, "profiles", 30).rsplit(":", 1)[1])
        (pid,) = (Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text()).split()
        # The service is PID 1 in its namespace: no default action for any signal.
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        assert next(line for line in status if line.startswith("NSpid:")).split()[-1] == "1"
        used, idle = (http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(2))
        for conn in (used, idle):
            conn.request("GET", "/health")
            reply = conn.getresponse()
            assert reply.status == 200 and reply.getheader("Connection") is None
            reply.read()

        signalled = time.monotonic()
        os.kill(int(pid), sig)
        _wait_for(lambda: _probe(port) == (503, "draining"), DELAY, "not draining")
        # A kept-alive connection still carries a request during the delay; the answer
        # says the connection closes.
        used.request("GET", "/ready")
        reply = used.getresponse()
        assert reply.status == 503 and reply.getheader("Connection") == "close"
        reply.read()
        # One idle since before the signal is closed when the listener closes.
        assert idle.sock is not None
        idle.sock.settimeout(DELAY + 5)
        assert idle.sock.recv(1) == b""
        closed_after = time.monotonic() - signalled
        assert _probe(port) == REFUSED
        assert outer.wait(timeout=5) == 0
        exited_after = time.monotonic() - signalled
    finally:
        if outer.poll() is None:
            outer.kill()
    assert DELAY * 0.9 <= closed_after < DELAY + 2, closed_after
    assert exited_after < DELAY + 3, exited_after


def test_a_second_signal_cuts_the_delay_short(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, ("profiles",), shutdown_delay=60.0)
    try:
        process = stack.processes["profiles"]
        process.popen.send_signal(signal.SIGTERM)
        _wait_for(lambda: _probe(process.port) == (503, "draining"), 5, "not draining")
        signalled = time.monotonic()
        process.popen.send_signal(signal.SIGINT)
        assert process.popen.wait(timeout=5) == 0
        assert time.monotonic() - signalled < 3
    finally:
        stack.stop()


# -- a stream of orders while every service restarts -------------------------------------

REPLICAS = 2
CLIENTS = 4
# Between one client's orders: a steady stream that leaves the machine room to start
# the restarted processes.
PACE = 0.05


@attrs.frozen
class Answer:
    key: str
    customer: Customer
    status: int
    body: dict[str, Any]
    attempts: int


def _stream(url: str, customers: list[Customer], stop: threading.Event, worker: int, retry: bool) -> list[Answer]:
    """One client sending orders until told to stop (at most 300). With ``retry`` it
    sends a request again with its key after no answer, a 502/503/504, ``409
    in_progress`` or a pending letter, as the README's failure table says it may;
    without, every answer counts as it is."""
    client = Gateway(url)
    answers: list[Answer] = []
    for number in range(300):
        if stop.is_set():
            break
        customer = customers[(worker + number) % len(customers)]
        key = f"stream-{worker}-{number}-{uuid.uuid4().hex[:8]}"
        attempts, give_up = 0, time.monotonic() + 30
        while True:
            attempts += 1
            try:
                reply = client.order(customer, price=100 + 10 * (number % 7), key=key if retry else None)
                status = reply.status_code
                # nginx's own 502 is HTML.
                json_body = reply.headers.get("Content-Type", "").startswith("application/json")
                body = reply.json() if json_body else {"text": reply.text[:200]}
            except requests.ConnectionError:
                status, body = 0, {}
            again = status in (0, 502, 503, 504) or (status == 409 and body.get("code") == "in_progress")
            again = again or (status == 201 and body["letter_pending"])
            if not retry or not again or time.monotonic() > give_up:
                break
            time.sleep(0.1)
        answers.append(Answer(key, customer, status, body, attempts))
        time.sleep(PACE)
    return answers


@contextlib.contextmanager
def _ordering(url: str, customers: list[Customer], retry: bool) -> Iterator[list[Answer]]:
    answers: list[Answer] = []
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        running = [pool.submit(_stream, url, customers, stop, worker, retry) for worker in range(CLIENTS)]
        try:
            time.sleep(0.5)
            yield answers
            time.sleep(0.5)
        finally:
            stop.set()
            answers.extend(answer for future in running for answer in future.result())


def _restart(stack: Stack, name: str, service: str, port: int) -> None:
    """SIGTERM, a clean exit, started again on the same port, ready."""
    assert stack.kill(name, signal.SIGTERM) == 0, f"{name} did not exit 0"
    stack.start_one(service, port=port, name=name, publish=False)
    _wait_for(lambda: _probe(port) == (200, "ready"), 15, f"{name} not ready again")


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Stack, dict[str, str], dict[str, list[int]]]]:
    if NGINX is None:
        pytest.fail("the rolling restart needs nginx: apt-get install -y nginx")
    listen = {service: free_port() for service in START_ORDER}
    balanced = {service: f"http://127.0.0.1:{port}" for service, port in listen.items()}
    # Behind nginx the delay lets it move on before the listener closes; nginx closes its
    # own idle connections sooner.
    delay = 1.0
    assert delay > KEEPALIVE_TIMEOUT
    stack = Stack(stack_settings(tmp_path, urls=balanced, shutdown_delay=delay), log_dir=tmp_path / "logs")
    backends: dict[str, list[int]] = {service: [] for service in START_ORDER}
    balancer = None
    try:
        with ThreadPoolExecutor(max_workers=REPLICAS) as pool:
            for service in START_ORDER:
                names = [f"{service}-{replica}" for replica in range(1, REPLICAS + 1)]
                started = [pool.submit(stack.start_one, service, port=0, name=name, publish=False) for name in names]
                backends[service] = [future.result().port for future in started]
        balancer = Balancer(tmp_path / "nginx", listen, backends)
        yield stack, balanced, backends
    finally:
        if balancer is not None:
            balancer.stop()
        stack.stop()


def test_rolling_restart_of_every_service_behind_nginx_costs_no_request(
    replicas: tuple[Stack, dict[str, str], dict[str, list[int]]],
) -> None:
    stack, balanced, backends = replicas
    customers = [Gateway(balanced["gateway"]).customer(deposit=2_000) for _ in range(3)]

    # Clients that send each order once, without a key: any failure would be seen. Each
    # round restarts one replica of every service at once; the other one serves.
    with _ordering(balanced["gateway"], customers, retry=False) as answers, ThreadPoolExecutor(6) as pool:
        for replica in range(REPLICAS):
            rolled = [
                pool.submit(_restart, stack, f"{service}-{replica + 1}", service, backends[service][replica])
                for service in START_ORDER
            ]
            for done in rolled:
                done.result()

    statuses = Counter(answer.status for answer in answers)
    assert statuses == {201: len(answers)}, (statuses, [a.body for a in answers if a.status != 201][:3])
    assert len(answers) > 50, "too few orders to prove anything"
    assert not [answer for answer in answers if answer.body["letter_pending"]]
    state = assert_invariants(stack.settings)
    assert len(state.orders) == len(answers)


def test_one_by_one_restart_of_a_single_instance_stack_loses_nothing(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, order_run_lease=LEASE)
    try:
        customers = [Gateway(stack.urls["gateway"]).customer(deposit=3_000) for _ in range(3)]
        with _ordering(stack.urls["gateway"], customers, retry=True) as answers:
            for service in START_ORDER:
                _restart(stack, service, service, stack.ports[service])
        gateway_url = stack.urls["gateway"]

        assert {answer.status for answer in answers} == {201}, Counter(a.status for a in answers)
        assert max(answer.attempts for answer in answers) > 1, "no restart was felt"
        state = assert_invariants(stack.settings)
        final = {order.id: order.status for order in state.orders}
        # One order per request, each as its client was told, none left behind.
        assert len(final) == len(answers)
        for answer in answers:
            assert final[answer.body["order"]["id"]] == answer.body["order"]["status"]
        report = run_recovery(stack)
        assert report.exit_code == 0 and report.changed_nothing(), report.output
        assert snapshot(stack.settings) == state
        assert Gateway(gateway_url).order(customers[0], price=1).status_code == 201
    finally:
        stack.stop()
