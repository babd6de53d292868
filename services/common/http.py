"""The internal HTTP client: one per downstream service, shared by all threads.

Every call has connect and read timeouts, never follows a redirect, caps the response
size, structures the answer by the contract, and is retried only when the caller says the
call is idempotent: after a jittered exponential backoff, or after the callee's
``Retry-After`` (capped). Any failure becomes a :class:`DownstreamError` with a reason
from a closed set. Three transports sit behind the same interface: HTTP/1.1 written onto
a kept-alive socket per thread (the cheapest), urllib3's thread-safe pool, and
``requests`` with one session per thread.
"""

from __future__ import annotations

import json
import random
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

import attrs
import urllib3
from cattrs.errors import ClassValidationError

from contracts.converter import structure, unstructure
from contracts.errors import ErrorBody
from services.common.logs import REQUEST_ID_HEADER, request_id_var

if TYPE_CHECKING:
    from services.common.trust import ServiceTokens

# Closed set of reasons a call fails.
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
SERVER_ERROR = "server_error"
BAD_RESPONSE = "bad_response"
RETRYABLE_STATUS = frozenset({502, 503, 504})
# What a caller is told to wait when the service it called gave no Retry-After, seconds.
DEFAULT_RETRY_AFTER = "1"


class DownstreamError(Exception):
    def __init__(
        self, service: str, reason: str, detail: str, status: int | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(f"{service}: {reason}: {detail}")
        self.service = service
        self.reason = reason
        self.detail = detail
        self.status = status
        # The callee's Retry-After, in seconds, when it sent a valid one.
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> int | None:
    """The seconds form of ``Retry-After`` (``120``); None for the date form, a
    negative or a malformed value, or none at all."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        return None
    return int(text)


@attrs.frozen
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _TransportTimeout(Exception):
    pass


class _TransportUnavailable(Exception):
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
        except urllib3.exceptions.NewConnectionError as exc:
            # A refused connection: urllib3 files it under ConnectTimeoutError, but the
            # service is down, not slow.
            raise _TransportUnavailable(str(exc)) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise _TransportTimeout(str(exc)) from exc
        except urllib3.exceptions.HTTPError as exc:
            if isinstance(getattr(exc, "reason", None), urllib3.exceptions.TimeoutError):
                raise _TransportTimeout(str(exc)) from exc
            raise _TransportUnavailable(str(exc)) from exc
        return RawResponse(resp.status, resp.headers, data)


class RequestsTransport:
    schemes = ("http", "https")

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        # Imported only when chosen: it costs a few MB in every process otherwise.
        import requests

        self.requests = requests
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
            raise _TransportTimeout(str(exc)) from exc
        except (self.requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise _TransportUnavailable(str(exc)) from exc
        return RawResponse(resp.status_code, resp.headers, data)


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
            raise _TransportUnavailable(f"{method} {url}: refusing a target or header with control characters")
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
            raise _TransportTimeout(f"{method} {url}: no answer in time") from exc
        except (OSError, _Broken, ValueError) as exc:
            self._drop(host, port)
            raise _TransportUnavailable(f"{method} {url}: {exc!r}") from exc
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
                raise _TransportTimeout(f"connect to {host}:{port} timed out") from exc
            except OSError as exc:
                raise _TransportUnavailable(f"connect to {host}:{port}: {exc}") from exc
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


TRANSPORTS = {"urllib3": Urllib3Transport, "requests": RequestsTransport, "socket": SocketTransport}


@attrs.frozen
class Reply:
    status: int
    data: Any
    error: ErrorBody | None
    elapsed_ms: float
    server_ms: float | None
    retry_after: str | None = None


@attrs.frozen
class ClientOptions:
    timeouts: Timeouts
    retries: int
    backoff: float
    max_response: int
    transport: str
    pool_size: int
    # The longest a callee's Retry-After makes one retry wait, seconds.
    retry_after_max: float = 1.0


class ServiceClient:
    """Calls one service. ``expect`` maps each documented status to its body class.

    ``jitter`` (a number in [0, 1)) and ``sleep`` make the wait before a retry; tests
    pass their own."""

    def __init__(
        self,
        service: str,
        base_url: str,
        tokens: ServiceTokens,
        options: ClientOptions,
        *,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.options = options
        self.jitter = jitter
        self.sleep = sleep
        factory = TRANSPORTS.get(options.transport)
        if factory is None:
            raise SystemExit(
                f"configuration: SYNCORDERS_HTTP_TRANSPORT={options.transport!r} is none of {', '.join(TRANSPORTS)}"
            )
        self.transport: Transport = factory(options.timeouts, options.pool_size)
        scheme = urlsplit(self.base_url).scheme
        if scheme not in self.transport.schemes:
            raise SystemExit(
                f"configuration: {service}'s URL {self.base_url!r} needs a transport that speaks {scheme or '?'}: "
                f"the {options.transport} one speaks {' and '.join(self.transport.schemes)} only "
                "(SYNCORDERS_HTTP_TRANSPORT=urllib3 speaks https too)"
            )

    def call(
        self,
        method: str,
        path: str,
        expect: Mapping[int, Any],
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> Reply:
        url = self.base_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        payload = None if body is None else json.dumps(unstructure(body), separators=(",", ":")).encode()
        attempts = 1 + (self.options.retries if idempotent else 0)
        waited = 0.0
        for attempt in range(attempts):
            try:
                return self._once(method, url, payload, expect)
            except DownstreamError as exc:
                retryable = exc.reason in (UNAVAILABLE, TIMEOUT) or exc.status in RETRYABLE_STATUS
                if attempt + 1 >= attempts or not retryable:
                    raise
                delay = self.retry_delay(attempt, exc.retry_after)
                # All the waiting of one call fits in one read timeout: a caller that
                # is itself waiting on this call gives up after about that long.
                if waited + delay > self.options.timeouts.read:
                    raise
                self.sleep(delay)
                waited += delay
        raise AssertionError("unreachable")

    def retry_delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry ``attempt + 1``: the exponential backoff with
        equal jitter (half fixed, half random, so callers that failed together do not
        come back together), or the callee's ``Retry-After`` if longer, capped at
        ``retry_after_max``."""
        step = self.options.backoff * (2**attempt)
        delay = step / 2 + self.jitter() * step / 2
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            delay = max(delay, min(float(asked), self.options.retry_after_max))
        return delay

    def _once(self, method: str, url: str, payload: bytes | None, expect: Mapping[int, Any]) -> Reply:
        headers = {
            "Accept": "application/json",
            "Authorization": self.tokens.header(self.service),
            REQUEST_ID_HEADER: request_id_var.get(),
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            raw = self.transport.send(method, url, payload, headers, self.options.max_response)
        except _TransportTimeout as exc:
            raise DownstreamError(self.service, TIMEOUT, str(exc)) from exc
        except _TransportUnavailable as exc:
            raise DownstreamError(self.service, UNAVAILABLE, str(exc)) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        return self._interpret(raw, expect, elapsed_ms)

    def _interpret(self, raw: RawResponse, expect: Mapping[int, Any], elapsed_ms: float) -> Reply:
        if len(raw.body) > self.options.max_response:
            raise DownstreamError(self.service, BAD_RESPONSE, "response larger than allowed", raw.status)
        # Passed on to this service's own caller: only the seconds form is kept.
        retry_after = raw.headers.get("Retry-After")
        if retry_after_seconds(retry_after) is None:
            retry_after = None
        if raw.status not in expect:
            # A 503 is the callee (its database, a proxy in front of it) saying it cannot
            # serve now: the same as not reaching it.
            if raw.status == 503:
                reason, detail = UNAVAILABLE, "503 service unavailable"
            else:
                reason = SERVER_ERROR if raw.status >= 500 else BAD_RESPONSE
                detail = f"undocumented status {raw.status}"
            raise DownstreamError(self.service, reason, detail, raw.status, retry_after)
        cls = expect[raw.status]
        data = None
        if cls is not None:
            content_type = raw.headers.get("Content-Type", "")
            if not content_type.startswith("application/json"):
                raise DownstreamError(self.service, BAD_RESPONSE, f"not JSON ({content_type or 'no type'})", raw.status)
            try:
                data = structure(json.loads(raw.body), cls)
            except (ValueError, ClassValidationError) as exc:
                raise DownstreamError(self.service, BAD_RESPONSE, f"body not as documented: {exc}", raw.status) from exc
        error = data if isinstance(data, ErrorBody) else None
        return Reply(
            raw.status,
            None if error else data,
            error,
            elapsed_ms,
            _server_ms(raw.headers),
            retry_after,
        )


def _server_ms(headers: Mapping[str, str]) -> float | None:
    """The callee's own time from its ``Server-Timing: app;dur=…`` entry."""
    for entry in headers.get("Server-Timing", "").split(","):
        name, _, rest = entry.strip().partition(";")
        if name == "app" and rest.startswith("dur="):
            try:
                return float(rest[4:])
            except ValueError:
                return None
    return None


def client_options(settings: Any, pool_size: int) -> ClientOptions:
    return ClientOptions(
        timeouts=Timeouts(settings.http_connect_timeout, settings.http_read_timeout),
        retries=settings.http_retries,
        backoff=settings.http_backoff,
        retry_after_max=settings.http_retry_after_max,
        max_response=settings.http_max_response,
        transport=settings.http_transport,
        pool_size=pool_size,
    )
