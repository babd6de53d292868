"""waitress, extended so that slow or many clients cannot take a service's connections.

waitress closes a connection only after ``channel_timeout`` seconds *without a byte*, so
a client that sends its request one byte a second holds the connection for as long as
it likes, and enough such clients hold all ``connection_limit`` of them. Here each
request must arrive in time: its headers within ``header_timeout`` seconds of its first
byte, then its body within ``body_timeout``. The server's periodic maintenance, run
every second, answers a late request ``408`` and closes its connection.

Two more things differ from ``waitress.create_server``: the loop waits with ``poll()``,
not ``select()``, which fails on a descriptor numbered 1024 or above and stops the whole
server; and the process's open-file limit must hold ``connection_limit`` connections
plus what the service itself keeps open: the service raises its soft limit to that, or
does not start.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from typing import Any

import attrs
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from services.common.errors import ApiError

log = logging.getLogger(__name__)

# How often the deadlines are checked, seconds (the loop wakes at least once a second).
CHECK_INTERVAL = 1.0

HEADERS = "headers"
BODY = "body"


@attrs.frozen
class Deadlines:
    """How long a request's headers, then its body, may take to arrive (seconds)."""

    header: float
    body: float

    def __attrs_post_init__(self) -> None:
        for name, value in (("SYNCORDERS_HEADER_TIMEOUT", self.header), ("SYNCORDERS_BODY_TIMEOUT", self.body)):
            if not value > 0:
                raise SystemExit(f"configuration: {name} must be a positive number of seconds, not {value}")

    def limit(self, phase: str) -> float:
        return self.header if phase == HEADERS else self.body


def timeout_response(phase: str, limit: float) -> bytes:
    """``408`` in the one error shape, closing the connection."""
    error = ApiError(
        408,
        "request_timeout",
        "Request timeout",
        f"The request's {phase} did not arrive within {limit:g} s; the connection is closed.",
    )
    body = json.dumps(error.to_dict(), separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class DeadlineChannel(HTTPChannel):
    """A connection that knows when the request it is receiving began, and its phase."""

    server: DeadlineServer
    # The request being received as last seen, which phase it is in, and since when.
    watched: HTTPRequestParser | None = None
    phase: str = HEADERS
    since: float = 0.0

    def received(self, data: bytes) -> bool:
        accepted = super().received(data)
        self.note_progress(time.monotonic())
        return accepted

    def note_progress(self, now: float) -> None:
        request = self.request
        if request is None:
            self.watched = None
            return
        if request is not self.watched:
            self.watched, self.phase, self.since = request, HEADERS, now
        if self.phase == HEADERS and request.headers_finished:
            self.phase, self.since = BODY, now

    def overdue(self, now: float, deadlines: Deadlines) -> bool:
        if self.watched is None or self.will_close or self.close_when_flushed:
            return False
        if self.requests:
            # A request is being served and the channel does not read meanwhile: the
            # one queued behind it is not the client's delay.
            self.since = now
            return False
        return now - self.since > deadlines.limit(self.phase)

    def time_out(self, deadlines: Deadlines) -> None:
        limit = deadlines.limit(self.phase)
        log.info("closing a connection from %s: request %s not complete after %g s", self.addr, self.phase, limit)
        with self.requests_lock:
            if self.request is not None:
                self.request.close()
            self.request = self.watched = None
        response = timeout_response(self.phase, limit)
        with self.outbuf_lock:
            self.outbufs[-1].append(response)
            self.current_outbuf_count += len(response)
            self.total_outbufs_len += len(response)
        # The loop sends the answer, then closes (waitress's own path for a last response).
        self.close_when_flushed = True


class DeadlineServer(TcpWSGIServer):
    channel_class = DeadlineChannel

    def __init__(self, *args: Any, deadlines: Deadlines, **kwargs: Any) -> None:
        self.deadlines = deadlines
        super().__init__(*args, **kwargs)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        self.cut_late_requests(time.monotonic())

    def cut_late_requests(self, now: float) -> None:
        for channel in list(self.active_channels.values()):
            if isinstance(channel, DeadlineChannel) and channel.overdue(now, self.deadlines):
                channel.time_out(self.deadlines)


def descriptors_needed(connection_limit: int, threads: int) -> int:
    """Open files a service may hold: its clients' connections, and per thread a
    database connection (SQLite: three files) and pooled connections to the services
    it calls, plus logs, pipes and the listener."""
    return connection_limit + 8 * threads + 64


def make_room_for(needed: int) -> None:
    """Raise the soft open-file limit to ``needed`` if it is lower; stop if the hard
    limit is lower too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"configuration: SYNCORDERS_CONNECTION_LIMIT and SYNCORDERS_THREADS need {needed} open files, "
            f"more than this process may open ({hard}, `ulimit -Hn`): lower them or raise the limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def create_server(
    app: Any, *, deadlines: Deadlines, server_class: type[DeadlineServer] = DeadlineServer, **adjustments: Any
) -> DeadlineServer:
    """``waitress.create_server`` for one TCP listener (the first address the host
    resolves to), with a :class:`DeadlineServer` (or a subclass of it) waiting by poll()."""
    adj = Adjustments(cleanup_interval=CHECK_INTERVAL, asyncore_use_poll=True, **adjustments)
    if adj.unix_socket or adj.sockets:
        raise ValueError("only TCP listeners (host and port) are supported")
    make_room_for(descriptors_needed(adj.connection_limit, adj.threads))
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    return server_class(app, {}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0], deadlines=deadlines)
