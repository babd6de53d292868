"""The line a service prints once it listens, whichever server it runs on: the
supervisor and the tests read it to learn the real port (port 0 picks a free one)."""

from __future__ import annotations

import logging

log = logging.getLogger("services.common.server")


def announce(service: str, host: str, port: int, threads: int, server: str) -> None:
    """One line on stdout with the address bound, and one in the log."""
    print(f"syncorders {service} listening on http://{host}:{port}", flush=True)
    log.info("listening on %s:%s with %s threads (%s)", host, port, threads, server)
