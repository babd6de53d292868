"""Retries of the internal client: jittered exponential backoff, a callee's
``Retry-After`` honoured up to a cap, all waiting of one call within one read timeout,
and a ``503`` read as the callee being unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from contracts.errors import ErrorBody
from contracts.vocabulary import SERVER_ERROR, UNAVAILABLE
from services.common.http import ClientOptions, DownstreamError, ServiceClient, retry_after_seconds
from services.common.transports import RawResponse, Timeouts
from services.common.trust import ServiceTokens

JSON = {"Content-Type": "application/json"}
BUSY = b'{"code":"database_unavailable","title":"Database unavailable"}'


class Scripted:
    """A transport that answers from a script and records what was sent."""

    schemes = ("http",)

    def __init__(self, answers: list[RawResponse]) -> None:
        self.answers: Iterator[RawResponse] = iter(answers)
        self.sent = 0

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        self.sent += 1
        return next(self.answers)


def unavailable(retry_after: str | None = None) -> RawResponse:
    headers = {**JSON, **({"Retry-After": retry_after} if retry_after is not None else {})}
    return RawResponse(503, headers, BUSY)


OK = RawResponse(200, JSON, b"{}")


def scripted_client(
    answers: list[RawResponse],
    *,
    jitter: float = 0.5,
    retries: int = 2,
    backoff: float = 0.1,
    read: float = 5.0,
    cap: float = 1.0,
) -> tuple[ServiceClient, Scripted, list[float]]:
    options = ClientOptions(
        Timeouts(1.0, read),
        retries=retries,
        backoff=backoff,
        max_response=1024,
        transport="socket",
        pool_size=1,
        retry_after_max=cap,
    )
    waits: list[float] = []
    client = ServiceClient(
        "billing",
        "http://127.0.0.1:1",
        ServiceTokens("s" * 64, "gateway"),
        options,
        jitter=lambda: jitter,
        sleep=waits.append,
    )
    transport = Scripted(answers)
    client.transport = transport
    return client, transport, waits


def call(client: ServiceClient, *, idempotent: bool = True, expect: dict[int, Any] | None = None) -> Any:
    return client.call("POST", "/payments", expect or {200: None}, body=None, idempotent=idempotent)


@pytest.mark.parametrize(("jitter", "waits"), [(0.0, [0.05, 0.1]), (0.5, [0.075, 0.15]), (0.999, [0.1, 0.2])])
def test_backoff_doubles_with_equal_jitter(jitter: float, waits: list[float]) -> None:
    client, transport, slept = scripted_client([unavailable(), unavailable(), OK], jitter=jitter)
    assert call(client).status == 200
    assert transport.sent == 3
    assert slept == pytest.approx(waits, abs=1e-3)


def test_jitter_spreads_callers_that_failed_together() -> None:
    delays = set()
    for jitter in (0.1, 0.4, 0.7):
        client, _transport, _slept = scripted_client([])
        client.jitter = lambda jitter=jitter: jitter
        delays.add(round(client.retry_delay(1, None), 6))
    assert len(delays) == 3 and all(0.1 <= delay <= 0.2 for delay in delays)


def test_a_callees_retry_after_is_waited_for() -> None:
    client, transport, slept = scripted_client([unavailable("1"), OK], backoff=0.01, cap=2.0)
    assert call(client).status == 200
    assert (transport.sent, slept) == (2, [1.0])


def test_a_retry_after_longer_than_the_cap_waits_the_cap() -> None:
    client, transport, slept = scripted_client([unavailable("120"), unavailable("120"), OK], backoff=0.01, cap=0.5)
    assert call(client).status == 200
    assert (transport.sent, slept) == (3, [0.5, 0.5])


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    client, _transport, slept = scripted_client([unavailable("0"), OK], backoff=0.4, jitter=0.0)
    call(client)
    assert slept == [pytest.approx(0.2)]


@pytest.mark.parametrize("value", ["Wed, 21 Oct 2015 07:28:00 GMT", "-1", "1.5", "soon", "", "１"])
def test_a_retry_after_not_in_seconds_is_ignored(value: str) -> None:
    client, _transport, slept = scripted_client([unavailable(value), OK], backoff=0.1, jitter=0.0)
    call(client)
    assert slept == [pytest.approx(0.05)]


def test_waiting_stops_before_it_outlasts_the_read_timeout() -> None:
    client, transport, slept = scripted_client([unavailable("3")] * 3, read=2.5, cap=3.0, backoff=0.01)
    with pytest.raises(DownstreamError) as failure:
        call(client)
    # 3 s, then 3 more would pass the 2.5 s budget: the first retry is not even tried.
    assert (transport.sent, slept) == (1, [])
    assert failure.value.reason == UNAVAILABLE and failure.value.retry_after == "3"


def test_the_budget_allows_as_many_waits_as_fit() -> None:
    client, transport, slept = scripted_client([unavailable("1")] * 3, read=1.5, cap=1.0, backoff=0.01)
    with pytest.raises(DownstreamError):
        call(client)
    assert (transport.sent, slept) == (2, [1.0])


def test_an_undocumented_503_is_unavailable_and_retried_only_when_idempotent() -> None:
    client, transport, slept = scripted_client([unavailable("2")] * 3)
    with pytest.raises(DownstreamError) as failure:
        call(client)
    assert (failure.value.reason, failure.value.status, failure.value.retry_after) == (UNAVAILABLE, 503, "2")
    assert transport.sent == 3 and len(slept) == 2

    client, transport, slept = scripted_client([unavailable("2")] * 3)
    with pytest.raises(DownstreamError) as failure:
        call(client, idempotent=False)
    assert failure.value.reason == UNAVAILABLE and (transport.sent, slept) == (1, [])


def test_other_5xx_stay_server_errors() -> None:
    client, transport, _slept = scripted_client([RawResponse(502, JSON, b"{}")] * 3)
    with pytest.raises(DownstreamError) as failure:
        call(client)
    assert failure.value.reason == SERVER_ERROR and transport.sent == 3


def test_a_documented_503_is_the_callees_answer_with_its_retry_after() -> None:
    client, transport, slept = scripted_client([unavailable("7")])
    reply = call(client, expect={200: None, 503: ErrorBody})
    assert reply.status == 503 and reply.error is not None and reply.error.code == "database_unavailable"
    assert reply.retry_after == "7" and (transport.sent, slept) == (1, [])


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0), ("30", 30), (" 5 ", 5), (None, None), ("1e3", None), ("9999999999", None), ("+3", None)],
)
def test_retry_after_in_seconds(value: str | None, seconds: int | None) -> None:
    assert retry_after_seconds(value) == seconds
