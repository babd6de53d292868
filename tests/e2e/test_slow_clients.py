"""Slow clients do not lock others out.

The gateway bounds a request itself: headers that trickle past
``SYNCORDERS_HEADER_TIMEOUT``, or a body past ``SYNCORDERS_BODY_TIMEOUT``, get ``408``
and a closed connection while other clients are served; and a thousand open connections
do not stop it (its loop uses ``poll()``, not ``select()``).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from orchestrator.supervisor import Stack
from tests.e2e.conftest import log_text
from tests.harness import Gateway, start_stack
from tests.trickle import Tricklers, raise_open_files

# A request whose headers never end within a test: one byte a second takes minutes.
SLOW_HEADERS = (
    b"POST /orders HTTP/1.1\r\nHost: slow.example\r\nContent-Type: application/json\r\nX-Padding: "
    + b"x" * 300
    + b"\r\n\r\n"
)
BODY_HEAD = (
    b"POST /wallet/deposits HTTP/1.1\r\nHost: slow.example\r\nContent-Type: application/json\r\n"
    b"Content-Length: 300\r\n\r\n"
)
SLOW_BODY = b'{"amount": ' + b" " * 280 + b"1}"

# The gateway's bounds in the test.
TIMEOUT = 2.0
# A deadline is checked once a second and the loop may wait a second: cut by then, plus load.
CUT_MARGIN = 3.5
ANSWER_WITHIN = 1.0


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway with short bounds and room for more connections than select() watches."""
    raise_open_files(4096)
    running = start_stack(
        tmp_path_factory.mktemp("bare"),
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        connection_limit=1500,
    )
    yield running
    running.stop()


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.perf_counter()
    reply = call()
    return reply, time.perf_counter() - started


def raw_get(port: int, path: str = "/health") -> tuple[bytes, float]:
    """One request on a fresh connection: the answer's bytes and how long it took."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.perf_counter() - started


def assert_timed_out(answer: bytes, phase: str) -> None:
    """What a cut connection received, if it read it before the close: the 408."""
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        error = json.loads(body)
        assert error["code"] == "request_timeout" and phase in error["description"], error


# -- the gateway alone --------------------------------------------------------------------


def test_the_gateway_cuts_headers_that_trickle_while_it_serves_others(bare: Stack) -> None:
    port = port_of(bare.urls["gateway"])
    gateway = Gateway(bare.urls["gateway"])
    with Tricklers(port, 1, drip=SLOW_HEADERS) as slow:
        waited = []
        # One keep-alive connection, asking every quarter second while the other trickles.
        while slow.open_count() and slow.sent < TIMEOUT + CUT_MARGIN + 1:
            health, took = timed(lambda: gateway.request("GET", "/health"))
            assert health.status_code == 200
            waited.append(took)
            time.sleep(0.25)
        assert slow.wait_closed(timeout=1)
        assert max(waited) < ANSWER_WITHIN, waited
        (lifetime,) = slow.lifetimes()
        assert TIMEOUT <= lifetime <= TIMEOUT + CUT_MARGIN
        assert_timed_out(slow.received[0], "headers")
    assert "request headers not complete after 2 s" in log_text(bare, "gateway")


def test_the_gateway_cuts_a_body_that_trickles(bare: Stack) -> None:
    with Tricklers(port_of(bare.urls["gateway"]), 1, drip=SLOW_BODY, head=BODY_HEAD) as slow:
        assert slow.wait_closed(timeout=TIMEOUT + CUT_MARGIN + 1)
        (lifetime,) = slow.lifetimes()
        assert TIMEOUT <= lifetime <= TIMEOUT + CUT_MARGIN
        assert_timed_out(slow.received[0], "body")
    assert "request body not complete after 2 s" in log_text(bare, "gateway")


def test_150_trickling_connections_are_all_cut_then_a_new_client_is_served(bare: Stack) -> None:
    port = port_of(bare.urls["gateway"])
    with Tricklers(port, 150, drip=SLOW_HEADERS) as slow:
        assert slow.wait_closed(timeout=TIMEOUT + CUT_MARGIN + 1), f"{slow.open_count()} still open"
        lifetimes = slow.lifetimes()
        assert all(TIMEOUT <= t <= TIMEOUT + CUT_MARGIN for t in lifetimes), lifetimes
        for answer in slow.received:
            assert_timed_out(answer, "headers")
        answer, took = raw_get(port)
        assert answer.startswith(b"HTTP/1.1 200 ") and took < ANSWER_WITHIN, (answer, took)


def test_the_gateway_serves_past_a_thousand_open_connections(bare: Stack) -> None:
    # select() cannot watch a descriptor numbered 1024 or more; poll() can.
    port = port_of(bare.urls["gateway"])
    with Tricklers(port, 1100, drip=b"") as idle:
        # waitress accepts one connection per turn of its loop: the first request waits
        # behind the thousand queued before it, the next is served at once.
        first, _took = raw_get(port)
        answer, took = raw_get(port)
        assert first.startswith(b"HTTP/1.1 200 ") and answer.startswith(b"HTTP/1.1 200 ")
        assert took < ANSWER_WITHIN, took
        assert idle.open_count() == 1100
    assert bare.processes["gateway"].popen.poll() is None
    assert "filedescriptor out of range" not in log_text(bare, "gateway")
