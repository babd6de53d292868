"""How the internal client's requests travel: four transports behind one interface.

HTTP/1.1 written onto a kept-alive socket per thread (the cheapest, the default),
libcurl through pycurl with a handle per thread, urllib3's thread-safe pool, and
``requests`` with one session per thread. A transport
sends one request and hands back the raw answer, or raises :class:`TransportTimeout` or
:class:`TransportUnavailable`; what the answer means is the client's business
(:mod:`services.common.http`).
"""

from __future__ import annotations

import re
import select
import socket
import threading
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs


@attrs.frozen
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class TransportTimeout(Exception):
    pass


class TransportUnavailable(Exception):
    pass


class Transport(Protocol):
    # The URL schemes it can speak.
    schemes: tuple[str, ...]

    def send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int
    ) -> RawResponse: ...


@attrs.frozen
class Timeouts:
    connect: float
    read: float


class Urllib3Transport:
    schemes = ("http", "https")

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        # Imported only when chosen: with what it brings (ssl, http.client) it costs
        # every process several MB otherwise.
        import urllib3

        self.errors = urllib3.exceptions
        self.timeout = urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)
        self.pool = urllib3.PoolManager(num_pools=8, maxsize=pool_size, block=False, retries=False)

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        try:
            resp = self.pool.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=self.timeout,
                redirect=False,
                retries=False,
                preload_content=False,
            )
            try:
                data = resp.read(max_bytes + 1)
            finally:
                resp.release_conn()
        except self.errors.NewConnectionError as exc:
            # A refused connection: urllib3 files it under ConnectTimeoutError, but the
            # service is down, not slow.
            raise TransportUnavailable(str(exc)) from exc
        except self.errors.TimeoutError as exc:
            raise TransportTimeout(str(exc)) from exc
        except self.errors.HTTPError as exc:
            if isinstance(getattr(exc, "reason", None), self.errors.TimeoutError):
                raise TransportTimeout(str(exc)) from exc
            raise TransportUnavailable(str(exc)) from exc
        return RawResponse(resp.status, resp.headers, data)


class RequestsTransport:
    schemes = ("http", "https")

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        # Imported only when chosen: it costs a few MB in every process otherwise.
        import requests
        import urllib3

        self.requests = requests
        self.urllib3_errors = urllib3.exceptions
        self.timeout = (timeouts.connect, timeouts.read)
        self.pool_size = pool_size
        # A Session is not documented as thread-safe: one per thread.
        self.local = threading.local()

    def _session(self) -> Any:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.requests.Session()
            # Otherwise every call scans proxy variables and .netrc.
            session.trust_env = False
            self.local.session = session
        return session

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        try:
            resp = self._session().request(
                method, url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            )
            try:
                data = resp.raw.read(max_bytes + 1, decode_content=True)
            finally:
                resp.close()
        except self.requests.Timeout as exc:
            raise TransportTimeout(str(exc)) from exc
        except (self.requests.RequestException, self.urllib3_errors.HTTPError) as exc:
            raise TransportUnavailable(str(exc)) from exc
        return RawResponse(resp.status_code, resp.headers, data)


class PycurlTransport:
    """libcurl through pycurl: one handle per thread, which keeps its connections alive
    (and notices one the server closed) by itself. The headers of an answer arrive
    line by line into a list; the body into a buffer, cut off past ``max_bytes``."""

    schemes = ("http", "https")
    # libcurl's errors that mean the service could not be reached or the exchange broke.
    _TIMED_OUT = 28
    _WRITE_STOPPED = 23

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        # Imported only when chosen, like requests.
        import pycurl

        self.pycurl = pycurl
        self.connect_ms = max(1, int(timeouts.connect * 1000))
        self.total_ms = max(1, int((timeouts.connect + timeouts.read) * 1000))
        self.local = threading.local()

    def _handle(self) -> Any:
        curl = getattr(self.local, "curl", None)
        if curl is None:
            c = self.pycurl
            curl = self.local.curl = c.Curl()
            curl.setopt(c.NOSIGNAL, 1)  # timeouts without SIGALRM: threads
            curl.setopt(c.PROXY, "")  # never the environment's proxy variables
            curl.setopt(c.FOLLOWLOCATION, 0)
            curl.setopt(c.PROTOCOLS, c.PROTO_HTTP | c.PROTO_HTTPS)
            curl.setopt(c.TCP_NODELAY, 1)
            curl.setopt(c.CONNECTTIMEOUT_MS, self.connect_ms)
            curl.setopt(c.TIMEOUT_MS, self.total_ms)
        return curl

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        if _UNSAFE_TARGET.search(url) or any(_UNSAFE_VALUE.search(value) for value in headers.values()):
            raise TransportUnavailable(f"{method} {url}: refusing a target or header with control characters")
        c = self.pycurl
        curl = self._handle()
        lines: list[bytes] = []
        sink = _Sink(max_bytes)
        curl.setopt(c.URL, url)
        # No "Expect: 100-continue" round trip before a larger body.
        curl.setopt(c.HTTPHEADER, [f"{name}: {value}" for name, value in headers.items()] + ["Expect:"])
        if body is not None or method in ("POST", "PUT", "PATCH"):
            curl.setopt(c.POSTFIELDS, body or b"")
        else:
            curl.setopt(c.HTTPGET, 1)
        curl.setopt(c.CUSTOMREQUEST, method)
        curl.setopt(c.HEADERFUNCTION, lines.append)
        curl.setopt(c.WRITEFUNCTION, sink.write)
        try:
            curl.perform()
        except c.error as exc:
            code = exc.args[0]
            if code == self._TIMED_OUT:
                raise TransportTimeout(f"{method} {url}: no answer in time") from exc
            if code != self._WRITE_STOPPED or not sink.full:
                raise TransportUnavailable(f"{method} {url}: {exc.args[1] if len(exc.args) > 1 else exc}") from exc
        return RawResponse(curl.getinfo(c.RESPONSE_CODE), _fields_of_last(lines), sink.data())


class _Sink:
    """A body, kept up to one byte past ``max_bytes``: more stops the transfer."""

    __slots__ = ("full", "max_bytes", "parts", "size")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.full = False

    def write(self, chunk: bytes) -> int | None:
        self.parts.append(chunk)
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.full = True
            return 0  # not what was given: libcurl stops
        return None

    def data(self) -> bytes:
        joined = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        return joined[: self.max_bytes + 1]


def _fields_of_last(lines: list[bytes]) -> Fields:
    """The header fields of the final answer (after any interim ``100 Continue``)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(b"HTTP/"):
            fields = {}
            continue
        name, colon, value = line.partition(b":")
        if colon:
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            fields[key] = f"{fields[key]}, {text}" if key in fields else text
    return Fields(fields)


class Fields(dict[str, str]):
    """An answer's headers by lower-cased name; look-ups take any case."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Broken(Exception):
    """The answer broke HTTP/1.1's framing, or the connection ended inside it."""


_MAX_LINE = 8192
_MAX_FIELDS = 100
# A request target or header value with a space or a control character could split the
# request in two: never sent.
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@attrs.define
class _Connection:
    sock: socket.socket
    reader: Any


class SocketTransport:
    """HTTP/1.1 written straight onto a kept-alive socket, one per thread and host.

    The services' calls are small JSON requests and answers. ``http.client``, under
    urllib3 and requests alike, parses each answer's headers with the ``email`` package,
    and that was the largest single part of the gateway's CPU per order. This speaks the
    part of HTTP/1.1 those calls need: one request at a time, answers framed by
    ``Content-Length``, by chunks or by the connection's end, keep-alive and ``close``.
    Plain HTTP only: there is no TLS inside the stack.
    """

    schemes = ("http",)

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        self.timeouts = timeouts
        self.local = threading.local()

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _UNSAFE_TARGET.search(target) or any(_UNSAFE_VALUE.search(value) for value in headers.values()):
            raise TransportUnavailable(f"{method} {url}: refusing a target or header with control characters")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        conn = self._connection(host, port)
        try:
            conn.sock.sendall(head + body if body else head)
            status, fields, data, keep = _read_answer(conn.reader, method, max_bytes)
        except TimeoutError as exc:
            self._drop(host, port)
            raise TransportTimeout(f"{method} {url}: no answer in time") from exc
        except (OSError, _Broken, ValueError) as exc:
            self._drop(host, port)
            raise TransportUnavailable(f"{method} {url}: {exc!r}") from exc
        if not keep:
            self._drop(host, port)
        return RawResponse(status, fields, data)

    def _connections(self) -> dict[tuple[str, int], _Connection]:
        table: dict[tuple[str, int], _Connection] | None = getattr(self.local, "connections", None)
        if table is None:
            table = self.local.connections = {}
        return table

    def _connection(self, host: str, port: int) -> _Connection:
        table = self._connections()
        conn = table.get((host, port))
        if conn is not None and _closed_by_peer(conn.sock):
            self._drop(host, port)
            conn = None
        if conn is None:
            try:
                sock = socket.create_connection((host, port), timeout=self.timeouts.connect)
            except TimeoutError as exc:
                raise TransportTimeout(f"connect to {host}:{port} timed out") from exc
            except OSError as exc:
                raise TransportUnavailable(f"connect to {host}:{port}: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.timeouts.read)
            conn = table[(host, port)] = _Connection(sock, sock.makefile("rb"))
        return conn

    def _drop(self, host: str, port: int) -> None:
        conn = self._connections().pop((host, port), None)
        if conn is not None:
            conn.reader.close()
            conn.sock.close()


def _read_answer(reader: Any, method: str, max_bytes: int) -> tuple[int, Fields, bytes, bool]:
    """Status, headers, body (at most ``max_bytes + 1`` of it) and whether the
    connection may carry another request."""
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if not line:
            raise _Broken("connection closed before an answer")
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code = rest[:3]
        if len(line) > _MAX_LINE or not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise _Broken(f"not an HTTP/1.x status line: {line[:80]!r}")
        status = int(code)
        fields = _read_fields(reader)
        # An interim answer (100 Continue) is followed by the real one.
        if not 100 <= status < 200:
            break
    connection = fields.get("connection", "").lower()
    keep = "close" not in connection if version == b"HTTP/1.1" else "keep-alive" in connection
    if method == "HEAD" or status in (204, 304):
        return status, fields, b"", keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        data = _read_chunks(reader, max_bytes)
        return status, fields, data, keep and len(data) <= max_bytes
    length = fields.get("content-length")
    if length is None:
        return status, fields, reader.read(max_bytes + 1), False
    size = int(length)
    if size < 0:
        raise _Broken("negative Content-Length")
    data = reader.read(min(size, max_bytes + 1))
    if len(data) < min(size, max_bytes + 1):
        raise _Broken("connection closed inside the body")
    # A body longer than allowed is left unread: this connection is done.
    return status, fields, data, keep and size <= max_bytes


def _read_fields(reader: Any) -> Fields:
    fields: dict[str, str] = {}
    for _ in range(_MAX_FIELDS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise _Broken("header line too long")
        if line in (b"\r\n", b"\n"):
            return Fields(fields)
        if not line:
            raise _Broken("connection closed inside the headers")
        name, colon, value = line.partition(b":")
        if not colon:
            raise _Broken(f"malformed header line: {line[:80]!r}")
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        fields[key] = f"{fields[key]}, {text}" if key in fields else text
    raise _Broken("too many header lines")


def _read_chunks(reader: Any, max_bytes: int) -> bytes:
    body = bytearray()
    while len(body) <= max_bytes:
        line = reader.readline(_MAX_LINE + 1)
        if not line:
            raise _Broken("connection closed inside the chunks")
        size = int(line.split(b";", 1)[0], 16)
        if size < 0:
            raise _Broken("negative chunk size")
        if size == 0:
            _read_fields(reader)  # trailers, if any
            break
        chunk = reader.read(size)
        if len(chunk) < size or reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise _Broken("connection closed inside a chunk")
        body += chunk
    return bytes(body[: max_bytes + 1])


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive connection is readable only if the server closed it (or sent
    something unasked): either way it must not carry the next request."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


TRANSPORTS = {
    "urllib3": Urllib3Transport,
    "requests": RequestsTransport,
    "socket": SocketTransport,
    "pycurl": PycurlTransport,
}
