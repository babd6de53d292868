"""The request deadlines on waitress's own objects: a channel on one end of a socket
pair, fed bytes as the loop would, and the server's check run at chosen times."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from waitress.adjustments import Adjustments

from services.common import slow_clients
from services.common.slow_clients import BODY, HEADERS, DeadlineChannel, Deadlines, DeadlineServer

DEADLINES = Deadlines(header=10.0, body=30.0)


class Queue:
    """Takes the tasks a complete request makes, and runs none."""

    def __init__(self) -> None:
        self.tasks: list[Any] = []

    def add_task(self, task: Any) -> None:
        self.tasks.append(task)


@pytest.fixture
def server() -> Iterator[DeadlineServer]:
    adj = Adjustments(host="127.0.0.1", port=0)
    made = DeadlineServer(lambda environ, start: [], {}, _start=False, dispatcher=Queue(), adj=adj, deadlines=DEADLINES)
    yield made
    made.close()


@pytest.fixture
def channel(server: DeadlineServer) -> Iterator[DeadlineChannel]:
    ours, theirs = socket.socketpair()
    made = DeadlineChannel(server, ours, ("192.0.2.1", 4000), server.adj, map=server._map)
    yield made
    made.close()
    theirs.close()


def answered(channel: DeadlineChannel) -> bytes:
    return b"".join(bytes(buffer.get(len(buffer))) for buffer in channel.outbufs)


def test_headers_that_trickle_past_the_header_timeout_get_408_and_a_close(
    server: DeadlineServer, channel: DeadlineChannel
) -> None:
    channel.received(b"GET /orders HTTP/1.1\r\nHo")
    started = channel.since
    for byte in b"st: x\r\n":
        channel.received(bytes([byte]))
    assert channel.phase == HEADERS and channel.since == started  # trickling does not reset the clock

    server.cut_late_requests(started + 9.9)
    assert not channel.close_when_flushed
    server.cut_late_requests(started + 10.1)
    assert channel.close_when_flushed and channel.request is None

    head, _, body = answered(channel).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body)["code"] == "request_timeout"


def test_a_body_gets_the_body_timeout_from_the_end_of_its_headers(
    server: DeadlineServer, channel: DeadlineChannel
) -> None:
    channel.received(b"POST /orders HTTP/1.1\r\nContent-Length: 10\r\n")
    channel.received(b"\r\n{")
    assert channel.phase == BODY
    body_started = channel.since

    server.cut_late_requests(body_started + 29.9)
    assert not channel.close_when_flushed
    server.cut_late_requests(body_started + 30.1)
    assert channel.close_when_flushed
    assert b"body did not arrive within 30 s" in answered(channel)


def test_a_complete_request_and_an_idle_connection_have_no_deadline(
    server: DeadlineServer, channel: DeadlineChannel
) -> None:
    assert channel.watched is None
    server.cut_late_requests(1e9)
    assert not channel.close_when_flushed

    channel.received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert channel.watched is None and len(server.task_dispatcher.tasks) == 1
    channel.requests.clear()  # served
    server.cut_late_requests(1e9)
    assert not channel.close_when_flushed


def test_the_clock_of_a_request_queued_behind_one_being_served_waits(
    server: DeadlineServer, channel: DeadlineChannel
) -> None:
    # A pipelined request's first bytes, read with the request before it.
    channel.received(b"GET /orders HTTP/1.1\r\nHost: x\r\n\r\nGET /wallet HTTP/1.1\r\n")
    assert channel.requests and channel.watched is not None
    started = channel.since

    # Served for a minute: the channel reads nothing meanwhile, so the next is not late.
    server.cut_late_requests(started + 60)
    assert not channel.close_when_flushed
    channel.requests.clear()
    server.cut_late_requests(started + 65)
    assert not channel.close_when_flushed
    server.cut_late_requests(started + 70.1)
    assert channel.close_when_flushed


@pytest.mark.parametrize("value", [0, -1.0])
def test_a_deadline_must_be_positive(value: float) -> None:
    with pytest.raises(SystemExit, match="SYNCORDERS_BODY_TIMEOUT"):
        Deadlines(header=10, body=value)


def test_the_open_file_limit_is_raised_for_the_connections_or_the_service_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"value": (1024, 4096)}
    monkeypatch.setattr(slow_clients.resource, "getrlimit", lambda kind: limits["value"])
    monkeypatch.setattr(slow_clients.resource, "setrlimit", lambda kind, value: limits.update(value=value))

    slow_clients.make_room_for(slow_clients.descriptors_needed(200, 16))
    assert limits["value"] == (1024, 4096)  # the defaults fit the common soft limit

    slow_clients.make_room_for(slow_clients.descriptors_needed(2000, 16))
    assert limits["value"] == (2000 + 8 * 16 + 64, 4096)

    with pytest.raises(SystemExit, match="SYNCORDERS_CONNECTION_LIMIT"):
        slow_clients.make_room_for(slow_clients.descriptors_needed(5000, 16))
