"""Slow clients do not lock others out.

In the recommended deployment, nginx with the shipped ``deploy/nginx/gateway.conf`` in
front of the gateway, a thousand connections that send their headers a byte a second
wait at nginx: a new customer registers, logs in, tops up and orders, each answer within
a second, and nginx ends the slow ones at its header timeout however they trickle.

Without a proxy, the gateway bounds a request itself: headers that trickle past
``SYNCORDERS_HEADER_TIMEOUT``, or a body past ``SYNCORDERS_BODY_TIMEOUT``, get ``408``
and a closed connection while other clients are served; and a thousand open connections
do not stop it (its loop uses ``poll()``, not ``select()``). On granian the late headers'
connection is closed without an answer, and a body is read by the thread that will run
the request: one that trickles holds it until it ends, and is then refused unseen.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from orchestrator.tools.supervisor import Stack
from tests.balancer import NGINX
from tests.e2e.conftest import log_text
from tests.harness import Gateway, start_stack
from tests.proxy import Proxy
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

# The shipped nginx configuration's client_header_timeout.
NGINX_HEADER_TIMEOUT = 10.0
# The gateway's own bounds in the bare stack.
TIMEOUT = 2.0
# A deadline is checked once a second and the loop may wait a second: cut by then, plus load.
CUT_MARGIN = 3.5
ANSWER_WITHIN = 1.0


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def proxy(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if NGINX is None:
        pytest.fail("the slow-client test needs nginx: apt-get install -y nginx")
    raise_open_files(4096)
    front = Proxy(tmp_path_factory.mktemp("nginx"), port_of(stack.urls["gateway"]))
    yield front
    front.stop()


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


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def eventually(check: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


def assert_timed_out(answer: bytes, phase: str) -> None:
    """What a cut connection received, if it read it before the close: the 408."""
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        error = json.loads(body)
        assert error["code"] == "request_timeout" and phase in error["description"], error


# -- the recommended deployment: nginx in front -------------------------------------------


def test_a_thousand_slow_headers_at_nginx_do_not_delay_a_new_customer(proxy: Proxy) -> None:
    began = time.monotonic()
    with Tricklers(proxy.port, 1000, drip=SLOW_HEADERS) as slow:
        slow.wait_sent(2, timeout=10)
        assert slow.open_count() == 1000

        gateway = Gateway(proxy.url)
        login = f"slowtest-{time.monotonic_ns()}"
        registered, took_register = timed(lambda: gateway.register(login))
        assert registered.status_code == 201, registered.text
        body = {"login": login, "password": "correct horse battery"}
        logged_in, took_login = timed(lambda: gateway.request("POST", "/auth/login", json=body))
        assert logged_in.status_code == 200, logged_in.text
        token = logged_in.json()["access_token"]
        topped, took_deposit = timed(lambda: gateway.request("POST", "/wallet/deposits", token, json={"amount": 500}))
        assert topped.status_code == 201, topped.text
        order = {
            "user_id": registered.json()["id"],
            "currency": "RUB",
            "items": [{"name": "Tea", "quantity": 1, "price": 300}],
        }
        ordered, took_order = timed(lambda: gateway.request("POST", "/orders", token, json=order))
        assert ordered.status_code == 201 and ordered.json()["order"]["status"] == "paid", ordered.text

        took = {"register": took_register, "login": took_login, "deposit": took_deposit, "order": took_order}
        assert max(took.values()) < ANSWER_WITHIN, took
        # Served while every slow connection was open and still trickling.
        assert slow.open_count() == 1000

        # nginx ends them at its header timeout, counted from the connection, however
        # they trickle.
        assert slow.wait_closed(timeout=NGINX_HEADER_TIMEOUT + CUT_MARGIN + 2)
        lifetimes = slow.lifetimes()
        assert all(NGINX_HEADER_TIMEOUT - 1 <= t <= NGINX_HEADER_TIMEOUT + CUT_MARGIN for t in lifetimes), lifetimes
    assert time.monotonic() - began < 30


def test_nginx_keeps_the_request_id_hides_metrics_and_answers_in_the_error_shape(proxy: Proxy, stack: Stack) -> None:
    http = session()
    kept = http.get(proxy.url + "/health", headers={"X-Request-ID": "client-chosen.42"}, timeout=10)
    assert kept.status_code == 200 and kept.headers["X-Request-ID"] == "client-chosen.42"

    # An ID the services would not accept is replaced by nginx's, the same in its log and
    # in the gateway's.
    replaced = http.get(proxy.url + "/health", headers={"X-Request-ID": "not/safe"}, timeout=10)
    rid = replaced.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert eventually(lambda: f"rid={rid}" in proxy.access_log())
    assert eventually(lambda: f"rid={rid}" in log_text(stack, "gateway"))

    hidden = http.get(proxy.url + "/metrics", timeout=10)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"

    # Within nginx's cap the gateway answers a large body itself; far beyond, nginx does.
    headers = {"Content-Type": "application/json"}
    large = http.post(proxy.url + "/auth/login", data=b" " * 100_000, headers=headers, timeout=10)
    assert large.status_code == 413 and large.json()["code"] == "payload_too_large"
    huge = http.post(proxy.url + "/auth/login", data=b" " * 200_000, headers=headers, timeout=10)
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    assert huge.headers["X-Request-ID"]


def test_slow_bodies_from_one_address_are_capped_at_nginx(proxy: Proxy) -> None:
    # Fifty requests in progress per address (the shipped limit_conn): a body that
    # trickles counts, so the fifty-first request from the address is refused...
    http = session()
    with Tricklers(proxy.port, 50, drip=SLOW_BODY, head=BODY_HEAD) as slow:
        slow.wait_sent(1, timeout=10)
        refused = http.get(proxy.url + "/health", timeout=10)
        assert refused.status_code == 429 and refused.json()["code"] == "too_many_requests"
        assert slow.open_count() == 50
    # ...until they end.
    assert eventually(lambda: http.get(proxy.url + "/health", timeout=10).status_code == 200)


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
    if bare.settings.server == "waitress":
        assert "request headers not complete after 2 s" in log_text(bare, "gateway")
    else:
        # hyper closes the connection and says nothing.
        assert slow.received[0] == b""


def test_the_gateway_cuts_a_body_that_trickles(bare: Stack) -> None:
    if bare.settings.server == "granian":
        pytest.skip("granian cannot cut a body while it trickles: see the test below")
    with Tricklers(port_of(bare.urls["gateway"]), 1, drip=SLOW_BODY, head=BODY_HEAD) as slow:
        assert slow.wait_closed(timeout=TIMEOUT + CUT_MARGIN + 1)
        (lifetime,) = slow.lifetimes()
        assert TIMEOUT <= lifetime <= TIMEOUT + CUT_MARGIN
        assert_timed_out(slow.received[0], "body")
    assert "request body not complete after 2 s" in log_text(bare, "gateway")


def test_on_granian_a_body_that_ends_after_its_deadline_is_refused_and_never_served(bare: Stack) -> None:
    if bare.settings.server != "granian":
        pytest.skip("waitress cuts a trickling body at its deadline: see the test above")
    body = b'{"amount": 1}'
    head = BODY_HEAD.replace(b"Content-Length: 300", f"Content-Length: {len(body)}".encode())
    trickle_for = len(body) * 0.25
    assert trickle_for > TIMEOUT + 0.5
    with Tricklers(port_of(bare.urls["gateway"]), 1, drip=body, head=head, interval=0.25) as slow:
        assert slow.wait_closed(timeout=trickle_for + CUT_MARGIN)
        (lifetime,) = slow.lifetimes()
        # Held until the body ended, then answered at once.
        assert trickle_for - 0.5 <= lifetime <= trickle_for + CUT_MARGIN
        assert slow.received[0], "no answer"
        assert_timed_out(slow.received[0], "body")
    log = log_text(bare, "gateway")
    assert "request body not complete after 2 s" in log
    # The request never reached the app: no access line for it.
    assert "access: POST /wallet/deposits" not in log


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
