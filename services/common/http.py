"""The internal HTTP client: one per downstream service, shared by all threads.

Every call has connect and read timeouts, never follows a redirect, caps the response
size, structures the answer by the contract, and is retried (with backoff) only when the
caller says the call is idempotent. Any failure becomes a :class:`DownstreamError` with a
reason from a closed set. Two transports sit behind the same interface: urllib3's
thread-safe pool, and ``requests`` with one session per thread.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Mapping
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


class DownstreamError(Exception):
    def __init__(self, service: str, reason: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{service}: {reason}: {detail}")
        self.service = service
        self.reason = reason
        self.detail = detail
        self.status = status


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
    def send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int
    ) -> RawResponse: ...


@attrs.frozen
class Timeouts:
    connect: float
    read: float


class Urllib3Transport:
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


class HttpClientTransport:
    """The standard library's ``http.client``: one keep-alive connection per thread and
    host. About half urllib3's client CPU per call; it has none of urllib3's features
    beyond what the services need, so the few it needs are here: separate connect and
    read timeouts, and a connection the server closed while idle is not reused."""

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        self.timeouts = timeouts
        self.local = threading.local()

    def _connection(self, host: str, port: int) -> http.client.HTTPConnection:
        connections: dict[tuple[str, int], http.client.HTTPConnection] = self.local.__dict__.setdefault(
            "connections", {}
        )
        conn = connections.get((host, port))
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            conn.close()
        if conn is None:
            conn = connections[(host, port)] = http.client.HTTPConnection(host, port, timeout=self.timeouts.connect)
        if conn.sock is None:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise _TransportTimeout(f"connect to {host}:{port} timed out") from exc
            except OSError as exc:
                raise _TransportUnavailable(f"connect to {host}:{port}: {exc}") from exc
            conn.sock.settimeout(self.timeouts.read)
        return conn

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        conn = self._connection(host, port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(max_bytes + 1)
            if not resp.isclosed():
                # More body than allowed is left unread: this connection is done.
                conn.close()
        except TimeoutError as exc:
            conn.close()
            raise _TransportTimeout(f"{method} {url}: no answer in time") from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _TransportUnavailable(f"{method} {url}: {exc!r}") from exc
        if resp.will_close:
            conn.close()
        return RawResponse(resp.status, resp.headers, data)


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive connection is readable only if the server closed it (or sent
    something unasked): either way it must not carry the next request."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


TRANSPORTS = {"urllib3": Urllib3Transport, "requests": RequestsTransport, "httpclient": HttpClientTransport}


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


class ServiceClient:
    """Calls one service. ``expect`` maps each documented status to its body class."""

    def __init__(self, service: str, base_url: str, tokens: ServiceTokens, options: ClientOptions) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.options = options
        self.transport: Transport = TRANSPORTS[options.transport](options.timeouts, options.pool_size)

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
        for attempt in range(attempts):
            try:
                return self._once(method, url, payload, expect)
            except DownstreamError as exc:
                retryable = exc.reason in (UNAVAILABLE, TIMEOUT) or exc.status in RETRYABLE_STATUS
                if attempt + 1 >= attempts or not retryable:
                    raise
                time.sleep(self.options.backoff * (2**attempt))
        raise AssertionError("unreachable")

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
        if raw.status not in expect:
            reason = SERVER_ERROR if raw.status >= 500 else BAD_RESPONSE
            raise DownstreamError(self.service, reason, f"undocumented status {raw.status}", raw.status)
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
            raw.headers.get("Retry-After"),
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
        max_response=settings.http_max_response,
        transport=settings.http_transport,
        pool_size=pool_size,
    )
