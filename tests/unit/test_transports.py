"""The internal client's transports behave alike: answers, timeouts, refused and dropped
connections, idle connections the server closed, oversized answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.common.http import (
    BAD_RESPONSE,
    TIMEOUT,
    TRANSPORTS,
    UNAVAILABLE,
    ClientOptions,
    DownstreamError,
    ServiceClient,
    Timeouts,
)
from services.common.trust import ServiceTokens


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        body = b'{"ok":true}' if self.path != "/big" else b'{"x":"' + b"a" * 5000 + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def client(transport: str, port: int, read: float = 0.3) -> ServiceClient:
    options = ClientOptions(
        Timeouts(0.5, read), retries=0, backoff=0, max_response=1024, transport=transport, pool_size=2
    )
    return ServiceClient("profiles", f"http://127.0.0.1:{port}", ServiceTokens("s" * 64, "gateway"), options)


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


def test_an_answer_comes_back_and_the_connection_is_reused(server, transport: str) -> None:
    http = client(transport, server.server_port)
    for _ in range(3):
        assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200


def test_a_slow_answer_is_a_timeout(server, transport: str) -> None:
    with pytest.raises(DownstreamError) as failure:
        client(transport, server.server_port).call("GET", "/slow", {200: None}, idempotent=False)
    assert failure.value.reason == TIMEOUT


def test_a_closed_port_is_unavailable(transport: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownstreamError) as failure:
        client(transport, port).call("GET", "/ok", {200: None}, idempotent=False)
    assert failure.value.reason == UNAVAILABLE


def test_a_connection_the_server_closed_is_not_reused(server, transport: str) -> None:
    http = client(transport, server.server_port)
    assert http.call("GET", "/close", {200: None}, idempotent=False).status == 200
    assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200


def test_an_answer_larger_than_allowed_is_refused_and_the_next_call_works(server, transport: str) -> None:
    http = client(transport, server.server_port)
    with pytest.raises(DownstreamError) as failure:
        http.call("GET", "/big", {200: None}, idempotent=False)
    assert failure.value.reason == BAD_RESPONSE
    assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200


def test_a_dropped_connection_is_unavailable(transport: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def drop() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.close()

    threading.Thread(target=drop, daemon=True).start()
    with pytest.raises(DownstreamError) as failure:
        client(transport, listener.getsockname()[1]).call("GET", "/ok", {200: None}, idempotent=False)
    listener.close()
    assert failure.value.reason == UNAVAILABLE


class ShortKeepAlive(Handler):
    # The server drops a keep-alive connection idle for longer than this.
    timeout = 0.2


def test_an_idle_connection_the_server_dropped_is_not_reused(transport: str) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ShortKeepAlive)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        http = client(transport, httpd.server_port)
        assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200
        time.sleep(0.5)
        assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200
    finally:
        httpd.shutdown()
