"""The internal client's transports behave alike: answers, timeouts, refused and dropped
connections, idle connections the server closed, oversized answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import pytest

from contracts.vocabulary import BAD_RESPONSE, TIMEOUT, UNAVAILABLE
from services.common.http import ClientOptions, DownstreamError, ServiceClient
from services.common.logs import request_id_var
from services.common.transports import TRANSPORTS, SocketTransport, Timeouts
from services.common.trust import ServiceTokens

JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
RAW_ANSWERS = {
    # A body in chunks, with a chunk extension and a trailer.
    "/chunked": JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    b'5;note=x\r\n{"ok"\r\n6\r\n:true}\r\n0\r\nX-Trailer: 1\r\n\r\n',
    # An interim answer before the real one.
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\n" + JSON_HEAD + b'Content-Length: 11\r\n\r\n{"ok":true}',
    # No length: the body ends with the connection.
    "/eof": b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok":true}',
    # More chunks than the client accepts.
    "/chunked-big": JSON_HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"400\r\n" + b"a" * 1024 + b"\r\n" for _ in range(3))
    + b"0\r\n\r\n",
    # Headers that say the body is longer than what comes before the connection ends.
    "/eof-short": JSON_HEAD + b'Content-Length: 50\r\n\r\n{"ok"',
    # Not HTTP at all.
    "/eof-garbage": b"SSH-2.0-OpenSSH_9.2\r\n",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        raw = RAW_ANSWERS.get(self.path)
        if raw is not None:
            # Written as bytes: framings the standard handler would not produce.
            self.wfile.write(raw)
            self.wfile.flush()
            if self.path.startswith("/eof"):
                self.close_connection = True
            return
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


@pytest.mark.parametrize("path", ["/chunked", "/continue", "/eof"])
def test_every_framing_of_an_answer_is_read_whole(server, transport: str, path: str) -> None:
    http = client(transport, server.server_port)
    for _ in range(2):
        reply = http.call("GET", path, {200: dict}, idempotent=False)
        assert (reply.status, reply.data) == (200, {"ok": True})
    assert http.call("GET", "/ok", {200: dict}, idempotent=False).data == {"ok": True}


def test_a_chunked_answer_larger_than_allowed_is_refused(server, transport: str) -> None:
    http = client(transport, server.server_port)
    with pytest.raises(DownstreamError) as failure:
        http.call("GET", "/chunked-big", {200: None}, idempotent=False)
    assert failure.value.reason == BAD_RESPONSE
    assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200


@pytest.mark.parametrize("path", ["/eof-short", "/eof-garbage"])
def test_a_cut_or_foreign_answer_is_unavailable(server, transport: str, path: str) -> None:
    http = client(transport, server.server_port)
    with pytest.raises(DownstreamError) as failure:
        http.call("GET", path, {200: None}, idempotent=False)
    assert failure.value.reason == UNAVAILABLE
    assert http.call("GET", "/ok", {200: None}, idempotent=False).status == 200


def test_headers_are_read_in_any_case(server) -> None:
    reply = client("socket", server.server_port).call("GET", "/ok", {200: dict}, idempotent=False)
    assert reply.data == {"ok": True}
    raw = SocketTransport(Timeouts(0.5, 0.5), 1).send("GET", f"http://127.0.0.1:{server.server_port}/ok", None, {}, 100)
    assert raw.headers.get("content-type") == raw.headers.get("Content-Type") == "application/json"
    assert "CONTENT-LENGTH" in raw.headers and raw.headers["Content-Length"] == "11"


@pytest.mark.parametrize(
    ("path", "request_id"),
    [("/ok HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /ok", "rid-1"), ("/ok", "rid-1\r\nX-Evil: 1")],
    ids=["target", "header"],
)
@pytest.mark.parametrize("transport", ["socket", "pycurl"])
def test_a_request_that_would_split_is_never_sent(server, path: str, request_id: str, transport: str) -> None:
    token = request_id_var.set(request_id)
    try:
        with pytest.raises(DownstreamError) as failure:
            client(transport, server.server_port).call("GET", path, {200: None}, idempotent=False)
    finally:
        request_id_var.reset(token)
    assert failure.value.reason == UNAVAILABLE
    assert "control characters" in failure.value.detail


def test_an_https_url_needs_a_transport_that_speaks_it() -> None:
    options = ClientOptions(
        Timeouts(0.5, 0.5), retries=0, backoff=0, max_response=1024, transport="socket", pool_size=1
    )
    with pytest.raises(SystemExit, match="needs a transport that speaks https"):
        ServiceClient("billing", "https://billing.internal", ServiceTokens("s" * 64, "gateway"), options)
    for transport in ("urllib3", "requests", "pycurl"):
        speaks_tls = attrs.evolve(options, transport=transport)
        assert ServiceClient("billing", "https://billing.internal", ServiceTokens("s" * 64, "gateway"), speaks_tls)


def test_an_unknown_transport_is_a_configuration_error() -> None:
    options = ClientOptions(
        Timeouts(0.5, 0.5), retries=0, backoff=0, max_response=1024, transport="carrier-pigeon", pool_size=1
    )
    with pytest.raises(SystemExit, match="'carrier-pigeon' is none of"):
        ServiceClient("billing", "http://127.0.0.1:1", ServiceTokens("s" * 64, "gateway"), options)
