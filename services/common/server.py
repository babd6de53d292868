"""Serve a WSGI app with waitress, every limit set explicitly from configuration."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
import sys
from typing import Any

import waitress

from services.common.config import Settings

log = logging.getLogger(__name__)


# glibc's mallopt parameters.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Keep a long-running, many-threaded service's memory from ratcheting up.

    glibc raises its mmap threshold after a large block is freed, so later large
    blocks (a password hash's 19 MiB) land in the heap and are never returned; and each thread
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


def serve(app: Any, service: str, settings: Settings, host: str | None = None, port: int | None = None) -> None:
    server = waitress.create_server(
        release_sent_bodies(app),
        host=host or settings.bind_host,
        port=settings.port(service) if port is None else port,
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
    bound_port = server.effective_port
    # One line on stdout, read by the supervisor and the tests to learn the real port.
    print(f"syncorders {service} listening on http://{server.effective_host}:{bound_port}", flush=True)
    log.info("listening on %s:%s with %s threads", server.effective_host, bound_port, settings.thread_count(service))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        sys.stdout.flush()
