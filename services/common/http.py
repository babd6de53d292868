"""The internal HTTP client: one per downstream service, shared by all threads.

Every call has connect and read timeouts, never follows a redirect, caps the response
size, structures the answer by the contract, and is retried only when the caller says the
call is idempotent: after a jittered exponential backoff, or after the callee's
``Retry-After`` (capped). Any failure becomes a :class:`DownstreamError` with a reason
from the closed set of :mod:`contracts.vocabulary`. The bytes travel by one of the
transports of :mod:`services.common.transports`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import attrs
from cattrs.errors import ClassValidationError
from opentelemetry.trace import NoOpTracer, Tracer

from contracts.converter import structure, unstructure
from contracts.errors import ErrorBody
from contracts.vocabulary import BAD_RESPONSE, SERVER_ERROR, TIMEOUT, UNAVAILABLE
from services.common.logs import REQUEST_ID_HEADER, request_id_var
from services.common.tracing import (
    NO_TRACING,
    Outbound,
    end_client_span,
    outbound_var,
    server_ms,
    start_client_span,
)
from services.common.transports import (
    TRANSPORTS,
    RawResponse,
    Timeouts,
    Transport,
    TransportTimeout,
    TransportUnavailable,
)

RETRYABLE_STATUS = frozenset({502, 503, 504})


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


class Credentials(Protocol):
    """Makes the ``Authorization`` header a call to ``target`` carries
    (:class:`services.common.trust.ServiceTokens`)."""

    def header(self, target: str) -> str: ...


@attrs.frozen
class Reply:
    """A documented answer: its status, its body structured by the contract (or the
    error body), the callee's own time and its ``Retry-After``."""

    status: int
    data: Any
    error: ErrorBody | None
    server_ms: float | None = None
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
        tokens: Credentials,
        options: ClientOptions,
        *,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).hostname or ""
        self.tracer = tracer
        # No span at all when tracing is off: not even a non-recording one.
        self.traced = not isinstance(tracer, NoOpTracer)
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
        route: str | None = None,
    ) -> Reply:
        """``route``: the path as the contract writes it (``/orders/{order_id}``), for
        the call's span and for the caller's own caller; ``path`` by default."""
        url = self.base_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        payload = None if body is None else json.dumps(unstructure(body), separators=(",", ":")).encode()
        attempts = 1 + (self.options.retries if idempotent else 0)
        waited = 0.0
        for attempt in range(attempts):
            try:
                return self._once(method, url, route or path, payload, expect)
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

    def _once(self, method: str, url: str, route: str, payload: bytes | None, expect: Mapping[int, Any]) -> Reply:
        headers = {
            "Accept": "application/json",
            "Authorization": self.tokens.header(self.service),
            REQUEST_ID_HEADER: request_id_var.get(),
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        calls = outbound_var.get()
        started = time.perf_counter()
        if not self.traced:
            reply, raw, failure = self._exchange(method, url, payload, headers, expect)
        else:
            # The call's span is current while it is made, so its trace context goes
            # out in the headers.
            traced = start_client_span(self.tracer, self.service, method, route, self.host, headers)
            reply = raw = failure = None
            try:
                reply, raw, failure = self._exchange(method, url, payload, headers, expect)
            finally:
                end_client_span(traced, reply, raw, failure)
        if calls is not None:
            calls.calls.append(
                Outbound(
                    target=self.service,
                    method=method,
                    route=route,
                    start_ms=(started - calls.started) * 1000,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    status=None if raw is None else raw.status,
                    server_ms=None if reply is None else reply.server_ms,
                    reason=None if failure is None else failure.reason,
                )
            )
        if failure is not None:
            raise failure
        assert reply is not None
        return reply

    def _exchange(
        self, method: str, url: str, payload: bytes | None, headers: dict[str, str], expect: Mapping[int, Any]
    ) -> tuple[Reply | None, RawResponse | None, DownstreamError | None]:
        """One request and its answer: the reply, or the failure (with the raw answer, if
        one came)."""
        raw = None
        try:
            raw = self.transport.send(method, url, payload, headers, self.options.max_response)
            return self._interpret(raw, expect), raw, None
        except TransportTimeout as exc:
            return None, None, DownstreamError(self.service, TIMEOUT, str(exc))
        except TransportUnavailable as exc:
            return None, None, DownstreamError(self.service, UNAVAILABLE, str(exc))
        except DownstreamError as exc:
            return None, raw, exc

    def _interpret(self, raw: RawResponse, expect: Mapping[int, Any]) -> Reply:
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
        return Reply(raw.status, None if error else data, error, server_ms(raw.headers), retry_after)


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
