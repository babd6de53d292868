"""Services failing under a running stream of orders, and each step's failure answered
as the README's table says.

The stream test SIGKILLs Billing, Orders, Notifications, Profiles and the gateway in
turn while clients keep ordering, restarts each, finishes some broken orders by
retrying them with the same key and the rest with ``syncorders recover``, then reads
every database to check that nothing was lost or charged twice.

The table test puts a fault proxy between the services: for each call of the flow
(steps 3, 5, 7, 9 and Notifications' lookup at step 10) it makes the callee down,
slow, answer 500 or answer garbage, checks what the client receives, then sends the
same request again and checks that it finishes the order.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest
import requests
import urllib3

from orchestrator.tools.supervisor import Stack
from tests.harness import Customer, Gateway, Inbox, start_stack
from tests.invariants import assert_invariants, run_recovery, snapshot

LEASE = 1.0
# The test SMTP server answers at once; a short timeout keeps short the wait recovery
# makes for a letter's delivery claim to lapse.
SMTP_TIMEOUT = 1.0
NO_ANSWER = 0
# The step each failure code names.
STEP_OF_CODE = {"create_order_failed": 3, "pay_failed": 5, "update_status_failed": 7}


def _finish(gateway: Gateway, customer: Customer, price: int, key: str, budget: float = 15.0) -> requests.Response:
    """Send the same request again until it finishes; ``409 in_progress`` means a dead
    run's claim on the order has not expired yet."""
    deadline = time.monotonic() + budget
    while True:
        reply = gateway.order(customer, price=price, key=key)
        if reply.status_code == 201 or time.monotonic() > deadline:
            return reply
        assert reply.status_code == 409 and reply.json()["code"] == "in_progress", reply.text
        time.sleep(LEASE / 4)


def _check_step_failure(body: dict[str, Any]) -> None:
    """A 5xx from the flow names the step, the reason and, once it exists, the order."""
    step = STEP_OF_CODE[body["code"]]
    assert body["step"] == step and body["step_name"] == body["code"].removesuffix("_failed")
    assert body["reason"] in {"unavailable", "timeout", "server_error", "bad_response", "refused"}
    assert ("order_id" in body) == (step > 3), body
    assert "Idempotency-Key" in body["description"] or "no order was created" in body["description"]


# -- a stream of orders while services die ------------------------------------------------


@attrs.define
class Sent:
    key: str
    customer: Customer
    price: int
    status: int
    body: dict[str, Any]


@pytest.fixture(scope="module")
def stream_stack(tmp_path_factory: pytest.TempPathFactory, smtp_options: dict[str, Any]) -> Iterator[Stack]:
    options = {**smtp_options, "order_run_lease": LEASE, "smtp_timeout": SMTP_TIMEOUT}
    running = start_stack(tmp_path_factory.mktemp("stream"), **options)
    yield running
    running.stop()


def _stream(stack: Stack, customers: list[Customer], stop: threading.Event, worker: int) -> list[Sent]:
    client = Gateway(stack.urls["gateway"])
    sent: list[Sent] = []
    # Bounded whatever happens: at most this many orders per worker.
    for number in range(400):
        if stop.is_set():
            break
        customer = customers[(worker + number) % len(customers)]
        price = 300 + 100 * ((worker * 7 + number) % 9)
        key = f"stream-{worker}-{number}-{uuid.uuid4().hex[:6]}"
        try:
            reply = client.order(customer, price=price, key=key)
        except requests.ConnectionError:
            # The gateway died with the request: no answer, the client must ask again.
            sent.append(Sent(key, customer, price, NO_ANSWER, {}))
            time.sleep(0.1)
            continue
        sent.append(Sent(key, customer, price, reply.status_code, reply.json()))
    return sent


def test_orders_survive_services_killed_and_restarted_under_load(stream_stack: Stack, smtp: tuple[int, Inbox]) -> None:
    stack = stream_stack
    customers = [Gateway(stack.urls["gateway"]).customer(deposit=20_000) for _ in range(3)]
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=4) as pool:
        running = [pool.submit(_stream, stack, customers, stop, worker) for worker in range(4)]
        try:
            time.sleep(0.4)
            for service in ("billing", "orders", "notifications", "profiles", "gateway"):
                stack.kill(service)
                time.sleep(0.3)
                stack.start_one(service)
                time.sleep(0.4)
        finally:
            stop.set()
        sent = [item for future in running for item in future.result()]

    statuses = Counter(item.status for item in sent)
    assert set(statuses) <= {NO_ANSWER, 201, 502, 503, 504}, statuses
    failed = [item for item in sent if item.status not in (201, NO_ANSWER)]
    assert failed, "the kills should have broken some orders"
    for item in failed:
        _check_step_failure(item.body)
    letters_pending = [item for item in sent if item.status == 201 and item.body["letter_pending"]]
    assert all(item.body["letter_id"] is None for item in letters_pending)
    assert all(item.body["order"]["status"] in {"paid", "cancelled"} for item in sent if item.status == 201)

    # A client without an answer asks again; of those told the step that failed, half
    # ask again and recovery finishes the rest.
    gateway = Gateway(stack.urls["gateway"])
    retried = [item for item in sent if item.status == NO_ANSWER] + failed[::2]
    for item in retried:
        again = _finish(gateway, item.customer, item.price, item.key)
        assert again.status_code == 201, again.text
        if "order_id" in item.body:
            assert again.json()["order"]["id"] == item.body["order_id"]
        assert again.json()["letter_pending"] is False

    first = run_recovery(stack)
    assert first.exit_code == 0 and first.failures == 0, first.output
    second = run_recovery(stack)
    assert second.exit_code == 0 and second.changed_nothing(), second.output

    state = assert_invariants(stack.settings, delivered=True)
    final = {order.id: order.status for order in state.orders}
    # What a client was told stands, and every order it was told about was finished.
    for item in sent:
        if item.status == 201:
            assert final[item.body["order"]["id"]] == item.body["order"]["status"]
        elif "order_id" in item.body:
            assert final[item.body["order_id"]] in {"paid", "cancelled"}
    _port, inbox = smtp
    for customer in customers:
        mails = inbox.to(customer.email)
        mine = [order for order in state.orders if order.user_id == customer.user_id]
        # Delivery is at least once: a kill between sending and recording may send twice.
        assert {m["Subject"].split()[2] for m in mails} == {order.id for order in mine}


# -- each step's failure, as the README's table gives it ----------------------------------

DOWN, SLOW, ERROR, GARBAGE = "down", "slow", "5xx", "garbage"


@attrs.frozen
class Fault:
    """Which calls to break, and how: ``drop`` closes the connection unanswered (the
    callee died mid-request), ``slow`` does the work but answers after the caller's
    timeout, ``5xx`` answers 500 without doing it, ``garbage`` does the work and answers
    a body that is not the documented one."""

    method: str
    path: str
    kind: str

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path.split("?")[0]) is not None


class FaultProxy:
    """An HTTP proxy in front of one service; passes everything on unless a fault is set."""

    def __init__(self, upstream: str, delay: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.fault: Fault | None = None
        self.hits = 0
        self.lock = threading.Lock()
        self.http = urllib3.PoolManager(maxsize=32, retries=False)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _relay(self) -> None:
                proxy.relay(self)

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def relay(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        fault = self.fault if self.fault and self.fault.matches(handler.command, handler.path) else None
        if fault is not None:
            with self.lock:
                self.hits += 1
        if fault is not None and fault.kind == "drop":
            self._drop(handler)
            return
        if fault is not None and fault.kind == ERROR:
            self._answer(handler, 500, "application/json", b'{"code":"internal_error","title":"Internal error"}', {})
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in {"host", "content-length"}}
        try:
            upstream = self.http.request(handler.command, self.upstream + handler.path, body=body, headers=headers)
        except urllib3.exceptions.HTTPError:
            # The service behind is down: its caller sees the connection fail, as it would.
            self._drop(handler)
            return
        if fault is not None and fault.kind == SLOW:
            time.sleep(self.delay)
        if fault is not None and fault.kind == GARBAGE:
            self._answer(handler, 200, "application/json", b'{"garbage": true}', {})
            return
        passed = {k: v for k, v in upstream.headers.items() if k in ("Server-Timing", "Retry-After", "X-Request-ID")}
        content_type = upstream.headers.get("Content-Type", "")
        self._answer(handler, upstream.status, content_type, upstream.data, passed)

    @staticmethod
    def _drop(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _answer(
        handler: http.server.BaseHTTPRequestHandler, status: int, content_type: str, body: bytes, headers: dict
    ) -> None:
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@attrs.frozen
class Proxied:
    stack: Stack
    proxies: dict[str, FaultProxy]
    gateway: Gateway

    def restart(self, service: str) -> None:
        self.stack.start_one(service)
        # start_one records the real address; callers started later must keep the proxy's.
        self.stack.urls[service] = self.proxies[service].url


READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[int, Inbox]) -> Iterator[Proxied]:
    """A stack whose services reach Orders, Billing, Notifications and Profiles through
    fault proxies. Short timeouts and one retry keep the slow cases short."""
    port, _inbox = smtp
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "order_run_lease": LEASE,
        "http_read_timeout": READ_TIMEOUT,
        "http_retries": 1,
    }
    stack = start_stack(tmp_path_factory.mktemp("proxied"), ("profiles", "billing", "orders"), **settings)
    proxies: dict[str, FaultProxy] = {}
    try:
        for service in ("profiles", "billing", "orders", "notifications"):
            if service == "notifications":
                stack.start_one("notifications")
            proxies[service] = FaultProxy(stack.urls[service], delay=READ_TIMEOUT * 1.5)
            stack.urls[service] = proxies[service].url
        stack.start(("auth", "gateway"))
        yield Proxied(stack, proxies, Gateway(stack.urls["gateway"]))
    finally:
        stack.stop()
        for proxy in proxies.values():
            proxy.close()


@attrs.frozen
class Left:
    """What a failed request leaves behind: the order's status (``None``: no order), whether
    money moved, whether the letter exists (``None``: it depends on timing)."""

    order: str | None
    debited: bool
    letter: bool | None


@attrs.frozen
class Row:
    """One row of the README's failure table: the call that fails, how, what the client
    gets (201 means the order finished but its letter is pending) and what is left."""

    step: int
    kind: str
    status: int
    reason: str | None
    left: Left

    @property
    def code(self) -> str | None:
        return {3: "create_order_failed", 5: "pay_failed", 7: "update_status_failed"}.get(self.step)

    @property
    def service(self) -> str:
        return CALLS[self.step][0]


# The call each step makes: the callee, the method and the path it is sent to.
CALLS = {
    3: ("orders", "POST", "/orders"),
    5: ("billing", "POST", "/payments"),
    7: ("orders", "PUT", r"/orders/[0-9a-f-]+/status"),
    9: ("notifications", "POST", "/letters"),
    10: ("profiles", "GET", r"/profiles/[0-9a-f-]+"),
}
NOTHING, PENDING, PENDING_DEBITED = (
    Left(None, False, False),
    Left("pending", False, False),
    Left("pending", True, False),
)
PAID_NO_LETTER, PAID_LETTER = Left("paid", True, False), Left("paid", True, True)
TABLE = (
    Row(3, DOWN, 503, "unavailable", NOTHING),
    Row(3, SLOW, 504, "timeout", PENDING),
    Row(3, ERROR, 502, "server_error", NOTHING),
    Row(3, GARBAGE, 502, "bad_response", PENDING),
    Row(5, DOWN, 503, "unavailable", PENDING),
    Row(5, SLOW, 504, "timeout", PENDING_DEBITED),
    Row(5, ERROR, 502, "server_error", PENDING),
    Row(5, GARBAGE, 502, "bad_response", PENDING_DEBITED),
    Row(7, DOWN, 503, "unavailable", PENDING_DEBITED),
    Row(7, SLOW, 504, "timeout", PAID_NO_LETTER),
    Row(7, ERROR, 502, "server_error", PENDING_DEBITED),
    Row(7, GARBAGE, 502, "bad_response", PAID_NO_LETTER),
    Row(9, DOWN, 201, None, PAID_NO_LETTER),
    Row(9, SLOW, 201, None, PAID_LETTER),
    Row(9, ERROR, 201, None, PAID_NO_LETTER),
    Row(9, GARBAGE, 201, None, PAID_LETTER),
    Row(10, DOWN, 201, None, PAID_NO_LETTER),
    # Notifications may still finish the lookup after the gateway stopped waiting.
    Row(10, SLOW, 201, None, Left("paid", True, None)),
    Row(10, ERROR, 201, None, PAID_NO_LETTER),
    Row(10, GARBAGE, 201, None, PAID_NO_LETTER),
)
# Where "down" is the real thing, a killed process: the step's service is first called
# at this step. At step 7 Orders dies mid-request instead (the proxy drops the call).
KILLED = {3, 5, 9, 10}


def _left_behind(stack: Stack, customer: Customer) -> Left:
    state = snapshot(stack.settings)
    orders = [order for order in state.orders if order.user_id == customer.user_id]
    assert len(orders) <= 1
    if not orders:
        return Left(None, any(op.user_id == customer.user_id for op in state.debits()), False)
    [order] = orders
    debited = any(op.order_id == order.id for op in state.debits())
    return Left(order.status, debited, bool(state.letters_for(order.id)))


@pytest.mark.parametrize("row", TABLE, ids=lambda row: f"step{row.step}-{row.service}-{row.kind}")
def test_failure_table_row(proxied: Proxied, row: Row) -> None:
    gateway, proxy = proxied.gateway, proxied.proxies[row.service]
    _service, method, path = CALLS[row.step]
    customer = gateway.customer(deposit=10_000)
    key = f"table-{uuid.uuid4()}"
    killed = row.kind == DOWN and row.step in KILLED
    if killed:
        proxied.stack.kill(row.service)
    else:
        proxy.fault = Fault(method, path, "drop" if row.kind == DOWN else row.kind)
    hits_before = proxy.hits
    try:
        reply = gateway.order(customer, price=1_500, key=key)
    finally:
        proxy.fault = None
        if killed:
            proxied.restart(row.service)
    assert killed or proxy.hits > hits_before, "the fault never triggered"

    assert reply.status_code == row.status, reply.text
    body = reply.json()
    if row.status == 201:
        # Steps 9 and 10 never fail an order that is already paid.
        assert body["order"]["status"] == "paid" and body["letter_pending"] is True and body["letter_id"] is None
        order_id = body["order"]["id"]
    else:
        assert (body["code"], body["step"], body["reason"]) == (row.code, row.step, row.reason)
        _check_step_failure(body)
        order_id = body.get("order_id")
    left = _left_behind(proxied.stack, customer)
    expected = row.left if row.left.letter is not None else attrs.evolve(row.left, letter=left.letter)
    assert left == expected

    again = _finish(gateway, customer, 1_500, key)

    assert again.status_code == 201, again.text
    result = again.json()
    assert result["order"]["status"] == "paid" and result["letter_pending"] is False
    assert order_id is None or result["order"]["id"] == order_id
    assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 8_500
    letters = gateway.request("GET", "/letters", customer.token).json()["items"]
    assert [(letter["kind"], letter["id"]) for letter in letters] == [("happy", result["letter_id"])]


def test_after_the_table_recovery_finds_nothing_left_and_nothing_is_charged_twice(proxied: Proxied) -> None:
    before = assert_invariants(proxied.stack.settings, delivered=True)
    assert len(before.orders_with("paid")) == len(TABLE)

    report = run_recovery(proxied.stack)

    assert report.exit_code == 0 and report.changed_nothing(), report.output
    assert report.letters_checked == len(TABLE)
    assert snapshot(proxied.stack.settings) == before
