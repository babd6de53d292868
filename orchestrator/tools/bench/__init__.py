"""``syncorders bench``: what distributing the order flow costs, measured in one run.

For each server (waitress, granian) and internal client it starts a stack of six
processes on free ports, and beside them the same six apps composed in one process (the
gateway's calls reaching the services' apps through WSGI, no sockets) and a stack with
tracing off; it drives ``POST /orders`` from a separate load process at each concurrency
level, in short rounds that take turns so a shared machine that slows down mid-run
moves every variant alike, then at a fixed arrival rate (open loop). A trivial Falcon
route on each server, driven the same way, is the server's floor. It prints orders/s,
latency percentiles, errors, each process's CPU per order, the steps' times, memory,
the price of the internal hops, what tracing costs, pycurl against the socket client,
and the targets met or missed; and draws a plot.

The load generator is :mod:`orchestrator.tools.loadgen`; the variants and measurements are in
:mod:`orchestrator.tools.bench.measure`, the run in :mod:`orchestrator.tools.bench.run`, the report
in :mod:`orchestrator.tools.bench.report`. This module holds only the command line, so that
``syncorders serve`` does not import any of it.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", default=None, help="measure a running gateway instead of starting stacks")
    parser.add_argument("--levels", default="1,8,32,128", help="concurrency levels (default 1,8,32,128)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per level, for each variant and floor (default 10)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="turns the variants take at each level (default 5)")
    parser.add_argument("--users", type=int, default=32, help="customers sending orders (default 32)")
    parser.add_argument("--servers", default="waitress,granian", help="HTTP servers to compare")
    parser.add_argument(
        "--transports", default="socket,pycurl", help="internal clients to compare (socket, pycurl, urllib3, requests)"
    )
    parser.add_argument(
        "--compare",
        default="tracing,composed",
        help="beside each server's first client: 'tracing' (a stack with tracing off), 'composed' "
        "(the six apps in one process); '' for neither",
    )
    parser.add_argument(
        "--open-loop",
        type=float,
        default=0.8,
        help="open loop at this fraction of each variant's highest orders/s (default 0.8; 0 skips it)",
    )
    parser.add_argument(
        "--open-connections", type=int, default=64, help="connections the open loop may use (default 64)"
    )
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run every stack on fresh databases made on this PostgreSQL server (dropped afterwards); "
        "without it, the SYNCORDERS_<SERVICE>_DATABASE URLs if set, else SQLite files",
    )
    parser.add_argument("--plot", default="bench-results/bench.png", help="PNG to write ('' for none)")


def main(args: Any, settings: Any) -> int:
    from orchestrator.tools.bench.run import run

    return run(args, settings)
