"""Serve a WSGI app with granian, a Rust HTTP server, in this process, with the same
limits and the same graceful stop as waitress (:mod:`services.common.server`).

HTTP parsing, keep-alive, connection handling and writing happen in Rust; Python runs
only the app, on ``threads`` threads granian keeps. granian's own launcher forks a
worker process and binds by itself; here its worker runs in the service's process on a
socket bound beforehand, so port 0 is known before the first request and the process
is one, as on waitress.

What each limit becomes:

- ``connection_limit``: connections held at once (granian's backpressure); more wait in
  the listen backlog, ``backlog`` long.
- ``header_timeout``: hyper's header read timeout, from the first byte of a request's
  headers, and for a kept-alive connection from the end of its last answer: a late
  client's connection is closed (without a ``408``), and an idle one after as long.
  ``channel_timeout`` has no counterpart.
- ``body_timeout``: a body is read whole before the app runs, by the thread that will
  run it; one that took longer is answered ``408`` and never reaches the app. A body
  that trickles holds that thread until it ends (waitress reads bodies in its loop and
  cuts them at the deadline): the proxy in front, which buffers bodies, covers that.
- ``max_body``: a declared length over it is refused by the app, unread, in the one
  error shape; a chunked body is read up to it and refused past it, the same way.
- Headers larger than 16 KiB: ``431`` (hyper's read buffer, sized to that).

SIGTERM or SIGINT drains as on waitress: ``/ready`` answers 503 at once and answers
carry ``Connection: close``; after ``shutdown_delay`` the listener closes, each
connection finishes its request in flight and closes; after ``shutdown_timeout`` (or a
second signal) what is left is cut.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from services.common.config import Settings
from services.common.errors import ApiError
from services.common.listening import announce
from services.common.readiness import DRAINING
from services.common.slow_clients import descriptors_needed, make_room_for

log = logging.getLogger(__name__)

# hyper needs a read buffer of at least 8 KiB; the headers must fit in it.
MAX_HEADER_BYTES = 16_384
# How often the main thread looks at the clock while it waits.
TICK = 0.05
# A thread granian keeps for the app ends after this long without work (its longest).
THREAD_IDLE_TIMEOUT = 600
# granian's Rust side allocates with its own jemalloc, which by default keeps an arena
# per CPU, a cache per thread, and freed pages for ten seconds: a gateway kept 5 MB more
# after a burst of 128 connections than with one arena, no thread caches, and freed
# pages returned at once. Read when granian's library loads (unless already set).
JEMALLOC = ("_RJEM_MALLOC_CONF", "narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0")

_BASE_ENVIRON = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SCRIPT_NAME": "",
    "wsgi.errors": sys.stderr,
    "wsgi.input_terminated": True,
    "wsgi.multiprocess": False,
    "wsgi.multithread": True,
    "wsgi.run_once": False,
    "wsgi.version": (1, 0),
}


def _error(status: int, code: str, title: str, description: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps(ApiError(status, code, title, description).to_dict(), separators=(",", ":")).encode()
    return status, [("Content-Type", "application/json"), ("Connection", "close")], body


class _Answer:
    """``start_response``: keeps the status and headers for granian."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        self.status = int(status[:3])
        self.headers = headers
        return _no_write


def _no_write(data: bytes) -> None:
    raise NotImplementedError("write() is not supported: return the body")


class Glue:
    """What granian's worker calls for each request: the environment completed, the
    body read in time and bounded, the drain shown to the app and to the client,
    requests counted."""

    def __init__(self, app: Any, max_body: int, body_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.draining = False
        self.in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, proto: Any, environ: dict[str, Any]) -> int:
        with self._lock:
            self.in_flight += 1
        try:
            status, headers, body = self.answer(environ)
        finally:
            with self._lock:
                self.in_flight -= 1
        if self.draining:
            headers.append(("Connection", "close"))
        if type(body) is bytes:
            proto.response_bytes(status, headers, body)
        else:
            proto.response_iter(status, headers, _Closing(body))
        return status

    def answer(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Any]:
        environ.update(_BASE_ENVIRON)
        environ[DRAINING] = self.draining
        refused = self._read_body(environ)
        if refused is not None:
            return refused
        start = _Answer()
        result = self.app(environ, start)
        if type(result) is list:
            return start.status, start.headers, b"".join(result)
        return start.status, start.headers, result

    def _read_body(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """The whole body, read before the app runs (as waitress does), so that a body
        that is late, cut short or too large never reaches it. A declared length over
        the limit is left to the app to refuse, unread; a chunked one is refused past
        the limit, else given its length."""
        declared = environ.get("CONTENT_LENGTH")
        if declared is not None:
            length = int(declared) if declared.isdigit() else -1
            if not 0 < length <= self.max_body:
                return None
            wanted = length
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            wanted = self.max_body + 1
        else:
            return None
        started = time.monotonic()
        data = environ["wsgi.input"].read(wanted)
        if time.monotonic() - started > self.body_timeout:
            log.info("answering 408: request body not complete after %g s", self.body_timeout)
            return _error(
                408,
                "request_timeout",
                "Request timeout",
                f"The request's body did not arrive within {self.body_timeout:g} s; the connection is closed.",
            )
        if declared is not None and len(data) < length:
            return _error(400, "bad_request", "Incomplete body", "The connection ended inside the request's body.")
        if len(data) >= wanted and declared is None:
            return _error(
                413, "payload_too_large", "Request body too large", f"At most {self.max_body} bytes are accepted."
            )
        environ["CONTENT_LENGTH"] = str(len(data))
        environ["wsgi.input"] = io.BytesIO(data)
        return None


class _Closing:
    """An iterable body whose ``close`` granian calls when it has sent it."""

    __slots__ = ("__next__", "inner")

    def __init__(self, inner: Iterable[bytes]) -> None:
        self.inner = inner
        self.__next__ = iter(inner).__next__

    def close(self) -> None:
        _close(self.inner)


def _close(result: Any) -> None:
    closer = getattr(result, "close", None)
    if closer is not None:
        closer()


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to the first address ``host`` resolves to (not yet listening:
    granian listens on it with the configured backlog)."""
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(address)
    return sock


class GranianServer:
    """granian's WSGI worker on a socket of our own, in this process."""

    def __init__(self, app: Any, settings: Settings, threads: int, sock: socket.socket) -> None:
        os.environ.setdefault(*JEMALLOC)
        from granian._granian import SocketHolder, WorkerSignal, WSGIWorker
        from granian.http import HTTP1Settings

        self.glue = Glue(app, settings.max_body, settings.body_timeout)
        self.host, self.port = sock.getsockname()[:2]
        self.stopped = threading.Event()
        self.signal = WorkerSignal()
        self.signal.add_cb(self.stopped.set)
        http1 = HTTP1Settings(
            header_read_timeout=max(1, int(settings.header_timeout * 1000)),
            keep_alive=True,
            max_buffer_size=MAX_HEADER_BYTES,
            pipeline_flush=False,
        )
        # From here the socket is granian's: it listens on it and closes it.
        holder = SocketHolder(sock.detach(), False, settings.backlog)
        self.worker = WSGIWorker(
            1,  # worker id, in granian's logs
            (None, holder),
            None,  # no IPC: there is no parent process
            1,  # one Rust thread runs the connections
            16,  # Rust's own blocking threads (file I/O; unused by WSGI)
            threads,  # Python threads for the app
            THREAD_IDLE_TIMEOUT,
            settings.connection_limit,
            "1",  # HTTP/1.1 only, like waitress
            http1,
            None,
            None,  # no static files
            False,  # no TLS: it ends at the proxy in front
            None,
            None,
            None,
            "1.3",
            None,
            [],
            False,
            (None, None),  # no metrics of granian's own
        )

    def start(self) -> None:
        from granian._futures import _new_cbscheduler

        # granian wants an event loop even for WSGI, where it runs nothing on it.
        scheduler = _new_cbscheduler(asyncio.new_event_loop(), self.glue, impl_asyncio=True)
        self.worker.serve_str(scheduler, asyncio.new_event_loop(), self.signal)

    def close_listener(self) -> None:
        """Stop accepting; each connection finishes its request in flight, then closes."""
        self.signal.set()


def serve_granian(app: Any, service: str, settings: Settings, host: str, port: int, stop: Any) -> bool:
    """Serve until a stop signal, then drain; whether everything in flight finished."""
    threads = settings.thread_count(service)
    make_room_for(descriptors_needed(settings.connection_limit, threads))
    server = GranianServer(app, settings, threads, bind(host, port))
    # granian's threads start with the stop signals blocked, so the kernel hands those
    # to the main thread, which waits for them.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop.SIGNALS)
    try:
        server.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    announce(service, server.host, server.port, threads, "granian")
    woken = threading.Event()
    stop.wake = woken.set
    try:
        while not stop.count:
            # The stop signals come to this thread (see above), and wake it.
            woken.wait(1.0)
        return _drain(server, stop, settings.shutdown_delay, settings.shutdown_timeout)
    finally:
        stop.wake = _nothing


def _nothing() -> None:
    pass


def _drain(server: GranianServer, stop: Any, delay: float, timeout: float) -> bool:
    server.glue.draining = True
    log.info(
        "%s: not ready from now on; the listener closes in %.1f s, then requests in flight have %.1f s",
        stop.first_name,
        max(0.0, delay),
        max(0.0, timeout),
    )
    closes_at = stop.first_at + max(0.0, delay)
    while stop.count == 1 and time.monotonic() < closes_at:
        time.sleep(min(TICK, max(0.0, closes_at - time.monotonic())))
    server.close_listener()
    log.info("listener closed; requests in flight: %d", server.glue.in_flight)
    deadline = time.monotonic() + max(0.0, timeout)
    while stop.count == 1 and not server.stopped.is_set() and time.monotonic() < deadline:
        server.stopped.wait(TICK)
    if server.stopped.is_set():
        log.info("drained in %.2f s", time.monotonic() - stop.first_at)
        return True
    why = "a second signal" if stop.count > 1 else f"the {max(0.0, timeout):.1f} s deadline"
    log.warning("requests in flight cut by %s: %d", why, server.glue.in_flight)
    return False
