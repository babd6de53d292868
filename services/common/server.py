"""Serve a WSGI app with waitress (the default) or granian (``SYNCORDERS_SERVER``),
every limit set explicitly from configuration, and stop it gracefully.

SIGTERM or SIGINT starts the drain: ``/ready`` answers 503 at once and every answer
from then on carries ``Connection: close``. After ``shutdown_delay`` (time for load
balancers to stop sending here) the listening socket closes; the requests in flight get
``shutdown_timeout`` to finish, idle kept-alive connections are closed, and the process
exits 0. A second signal, or the deadline, cuts what is left.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
import select
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.task import WSGITask

from services.common.config import Settings
from services.common.listening import announce
from services.common.readiness import DRAINING
from services.common.slow_clients import DeadlineChannel, Deadlines, DeadlineServer, create_server

log = logging.getLogger(__name__)


# glibc's mallopt parameters.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Keep a long-running, many-threaded service's memory from ratcheting up.

    glibc raises its mmap threshold after a large block is freed, so later large
    blocks (scrypt's 16 MiB) land in the heap and are never returned; and each thread
    may get its own arena. A fixed threshold and two arenas keep RSS near what is live.
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        log.debug("allocator tuning not available")


# waitress copies a body of this size or more into a buffer of the connection's own.
_WAITRESS_COPIES_FROM = 8192


def release_sent_bodies(app: Any) -> Any:
    """Wrap ``app`` so that waitress keeps no copy of a large body once it is sent.

    waitress copies each body into the connection's output buffer and keeps that buffer,
    with the last body in it, until the next response on the connection: every caller
    that keeps its connection open (the gateway keeps one per thread) pinned a whole
    page of a list in memory. Handed over as a file, a body is sent from the app's own
    bytes and dropped when sent.
    """

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        body = app(environ, start_response)
        as_file = environ.get("wsgi.file_wrapper")
        if as_file is not None and type(body) is list and len(body) == 1 and len(body[0]) >= _WAITRESS_COPIES_FROM:
            return as_file(io.BytesIO(body[0]))
        return body

    return wrapped


# -- stop signals ------------------------------------------------------------------------


class StopSignals:
    """SIGTERM and SIGINT, caught explicitly: as a container's PID 1 a process gets no
    default action for either, so without handlers it would ignore both."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.count = 0
        self.first_at: float | None = None
        self.first_name = ""
        # Wakes the server's loop; set while the loop runs.
        self.wake: Callable[[], None] = _nothing

    def install(self) -> StopSignals:
        for signum in self.SIGNALS:
            signal.signal(signum, self._caught)
        return self

    def _caught(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes: record, wake the loop, no more.
        self.count += 1
        if self.first_at is None:
            self.first_at = time.monotonic()
            self.first_name = signal.Signals(signum).name
        self.wake()


def _nothing() -> None:
    pass


# -- waitress, draining ------------------------------------------------------------------

# A connection accepted but still without its first request is given this long to send
# it before the drain counts it idle: a client that connected just before the listener
# closed is about to.
FIRST_REQUEST_GRACE = 1.0
# How often the drain looks at the clock between network events.
DRAIN_TICK = 0.05


class _Task(WSGITask):
    """A request as the app sees it: told whether the server drains, and answered with
    ``Connection: close`` once it does. (An app may not set hop-by-hop headers itself.)"""

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[DRAINING] = self.channel.server.draining
        return environ

    def build_response_header(self) -> bytes:
        self.channel.answered = True
        if self.channel.server.draining:
            self.set_close_on_finish()
        header: bytes = super().build_response_header()
        return header


class _Channel(DeadlineChannel):
    task_class = _Task
    # Whether this connection has carried a request: an idle one that has is a kept-alive
    # connection, closed when draining; a new one may be about to send its first.
    answered = False


class _Server(DeadlineServer):
    channel_class = _Channel
    draining = False


def _in_flight(channel: Any) -> int:
    """Requests a connection is reading, has queued for a thread or running, or whose
    answer it is still sending."""
    running = len(channel.requests)
    reading = channel.request is not None
    sending = not running and channel.total_outbufs_len > 0
    return running + int(reading) + int(sending)


def _idle(channel: Any, now: float) -> bool:
    """Nothing in flight, and either kept alive after an answer or silent too long."""
    if _in_flight(channel):
        return False
    return channel.answered or now - channel.creation_time >= FIRST_REQUEST_GRACE


class Drain:
    """Runs the server's loop until a stop signal, then drains it."""

    def __init__(self, server: _Server, stop: StopSignals, delay: float, timeout: float) -> None:
        self.server = server
        self.stop = stop
        self.delay = max(0.0, delay)
        self.timeout = max(0.0, timeout)
        self.map: dict[int, Any] = server._map

    def _poll(self, timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=self.map, use_poll=self.server.adj.asyncore_use_poll, count=1)

    def _channels(self) -> list[Any]:
        return list(self.server.active_channels.values())

    def _requests(self) -> int:
        return sum(_in_flight(channel) for channel in self._channels())

    def _asked_to_stop(self) -> None:
        """From the signal handler: from now on every request sees the drain (before the
        loop's next turn), and the loop wakes. Pulling the trigger writes one byte to a
        pipe, nothing more."""
        self.server.draining = True
        self.server.pull_trigger()

    def run(self) -> int:
        """Serve, drain; how many requests in flight were cut."""
        self.stop.wake = self._asked_to_stop
        try:
            while not self.stop.count:
                self._poll(self.server.adj.asyncore_loop_timeout)
            return self._drain()
        finally:
            self.stop.wake = _nothing
            self._close_all()

    def _drain(self) -> int:
        assert self.stop.first_at is not None
        self.server.draining = True
        log.info(
            "%s: not ready from now on; the listener closes in %.1f s, then requests in flight have %.1f s",
            self.stop.first_name,
            self.delay,
            self.timeout,
        )
        closes_at = self.stop.first_at + self.delay
        while self.stop.count == 1 and (now := time.monotonic()) < closes_at:
            self._poll(min(DRAIN_TICK, closes_at - now))
        self._close_listener()
        log.info("listener closed; requests in flight: %d", self._requests())
        deadline = time.monotonic() + self.timeout
        while self.stop.count == 1 and self._channels():
            now = time.monotonic()
            if now >= deadline:
                break
            wall = time.time()  # waitress times its connections by the wall clock
            for channel in self._channels():
                if _idle(channel, wall):
                    # Closed by the loop on its next turn, as waitress closes a timed-out one.
                    channel.will_close = True
            self._poll(min(DRAIN_TICK, deadline - now))
        left = self._requests()
        if left:
            why = "a second signal" if self.stop.count > 1 else f"the {self.timeout:.1f} s deadline"
            log.warning("requests in flight cut by %s: %d", why, left)
        else:
            log.info("drained in %.2f s", time.monotonic() - self.stop.first_at)
        return left

    def _close_listener(self) -> None:
        """Stop accepting. Connections the kernel has completed but waitress has not yet
        accepted would be reset by the close: take them in first."""
        waiting = select.poll()
        waiting.register(self.server.socket, select.POLLIN)
        for _ in range(self.server.adj.backlog):
            if not waiting.poll(0):
                break
            self.server.handle_accept()
        # The server's own close() would close the trigger too, which the threads still
        # pull when their answers are ready.
        wasyncore.dispatcher.close(self.server)

    def _close_all(self) -> None:
        cut = self._requests()
        for channel in self._channels():
            # handle_close also wakes a thread waiting to write, which then gives up.
            channel.handle_close()
        wasyncore.close_all(self.map)
        # Threads still in a cut request are not waited for: the process is leaving.
        self.server.task_dispatcher.shutdown(timeout=0 if cut else 5)


SERVERS = ("waitress", "granian")


def serve(
    app: Any,
    service: str,
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    stop: StopSignals | None = None,
) -> bool:
    """Serve until SIGTERM or SIGINT, then drain (see the module's docstring); whether
    everything in flight finished (false when the deadline or a second signal cut
    requests: their threads are still running). ``stop`` is given when the signals were
    caught from the process's start."""
    if settings.server not in SERVERS:
        raise SystemExit(f"configuration: SYNCORDERS_SERVER={settings.server!r} is none of {', '.join(SERVERS)}")
    stop = stop or StopSignals().install()
    if stop.count:
        log.info("%s before serving; not starting", stop.first_name)
        return True
    host = host or settings.bind_host
    port = settings.port(service) if port is None else port
    try:
        if settings.server == "granian":
            from services.common.granian_server import serve_granian

            return serve_granian(app, service, settings, host, port, stop)
        return _serve_waitress(app, service, settings, host, port, stop)
    finally:
        sys.stdout.flush()


def _serve_waitress(app: Any, service: str, settings: Settings, host: str, port: int, stop: StopSignals) -> bool:
    server = create_server(
        release_sent_bodies(app),
        server_class=_Server,
        deadlines=Deadlines(settings.header_timeout, settings.body_timeout),
        host=host,
        port=port,
        threads=settings.thread_count(service),
        connection_limit=settings.connection_limit,
        backlog=settings.backlog,
        channel_timeout=settings.channel_timeout,
        # The app refuses a body over max_body itself, in the one JSON error shape (413);
        # waitress's own refusal is plain text, so its cap sits above, only to bound memory.
        max_request_body_size=settings.max_body * 2,
        max_request_header_size=16_384,
        ident=f"syncorders-{service}",
        expose_tracebacks=False,
        clear_untrusted_proxy_headers=True,
    )
    announce(service, server.effective_host, server.effective_port, settings.thread_count(service), "waitress")
    return Drain(server, stop, settings.shutdown_delay, settings.shutdown_timeout).run() == 0
