"""The benchmark's run: the variants started, the loads taking turns, the results."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from orchestrator.tools.bench.measure import (
    Level,
    Process,
    Results,
    UnderTest,
    Variant,
    child_env,
    combined,
    cpu_seconds,
)
from orchestrator.tools.bench.measure import loadgen as drive
from orchestrator.tools.bench.report import Floor, Report, plot
from services.common.config import SERVICES, Settings
from services.common.server import SERVERS

OPEN = "open"


def variants(servers: list[str], transports: list[str], compare: set[str]) -> list[Variant]:
    """Each server with each client; then, for each server with its first client, the
    comparisons asked for."""
    chosen = [Variant(server, transport) for server in servers for transport in transports]
    if "tracing" in compare:
        chosen += [Variant(server, transports[0], traced=False) for server in servers]
    if "composed" in compare:
        chosen += [Variant(server, "inprocess") for server in servers]
    return chosen


def _slug(variant: Variant) -> str:
    return re.sub(r"[^a-z0-9]+", "-", variant.name.lower()).strip("-")


@contextlib.contextmanager
def postgres_databases(base: str | None) -> Iterator[Callable[[], dict[str, str]]]:
    """Makes a fresh database per service on ``base`` for each stack; drops them all
    at the end."""
    made: list[str] = []

    def make() -> dict[str, str]:
        assert base is not None
        import psycopg2

        tag = secrets.token_hex(4)
        prefix = base.rpartition("/")[0]
        conn = psycopg2.connect(base)
        conn.autocommit = True
        urls = {}
        with conn.cursor() as cur:
            for service in SERVICES[1:]:
                name = f"bench_{tag}_{service}"
                cur.execute(f'CREATE DATABASE "{name}"')
                made.append(name)
                urls[service] = f"{prefix}/{name}"
        conn.close()
        return urls

    try:
        yield make
    finally:
        if made:
            import psycopg2

            conn = psycopg2.connect(base)
            conn.autocommit = True
            with conn.cursor() as cur:
                for name in made:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.close()


@attrs.define
class Floors:
    """The trivial route on each server, measured in the same rounds."""

    processes: dict[str, Process]
    rounds: dict[str, dict[int, list[Level]]] = attrs.Factory(dict)
    cpu_s: dict[str, dict[int, float]] = attrs.Factory(dict)

    def measure(self, level: int, duration: float) -> None:
        for server, process in self.processes.items():
            before = cpu_seconds(process.popen.pid)
            result = drive(process.url, "ping", level, duration, None)
            spent = cpu_seconds(process.popen.pid) - before
            self.rounds.setdefault(server, {}).setdefault(level, []).append(result)
            used = self.cpu_s.setdefault(server, {})
            used[level] = used.get(level, 0.0) + spent

    def results(self) -> dict[str, Floor]:
        floors = {}
        for server, by_level in self.rounds.items():
            loads = {level: combined(parts) for level, parts in by_level.items()}
            cpu_us = {level: self.cpu_s[server][level] * 1e6 / max(1, loads[level].ok) for level in loads}
            floors[server] = Floor(loads, cpu_us)
        return floors


def run(args: Any, settings: Settings) -> int:
    levels = [int(level) for level in args.levels.split(",")]
    if args.rounds < 1 or args.duration <= 0 or not levels:
        raise SystemExit("bench: --rounds must be at least 1, --duration positive, --levels not empty")
    servers = [name for name in args.servers.split(",") if name]
    transports = [name for name in args.transports.split(",") if name]
    unknown = [name for name in servers if name not in SERVERS]
    if unknown or not servers or not transports:
        raise SystemExit(f"bench: --servers must name some of {', '.join(SERVERS)}, --transports at least one")
    compare = {name for name in args.compare.split(",") if name}
    chosen: list[Variant | None] = (
        [None] if args.gateway else list(variants(servers, transports, compare))  # type: ignore[arg-type]
    )
    database = (
        "PostgreSQL"
        if args.postgres or any(url.startswith("postgres") for url in settings.databases.values())
        else "SQLite"
    )
    print(
        f"benchmark: {len(chosen)} variant(s), levels {levels}, {args.duration:g} s each in {args.rounds} rounds, "
        f"{args.users} customers, {database}, {os.cpu_count()} CPUs",
        flush=True,
    )
    started = time.monotonic()
    slice_s = args.duration / args.rounds
    with (
        tempfile.TemporaryDirectory(prefix="syncorders-bench-") as scratch,
        postgres_databases(args.postgres) as make_databases,
        contextlib.ExitStack() as running,
    ):
        base = attrs.evolve(settings, data_dir=scratch, ports=dict.fromkeys(SERVICES, 0))
        if not any(url.startswith("postgres") for url in base.databases.values()):
            base = attrs.evolve(base, databases={})
        floors = Floors({})
        if not args.gateway:
            for server in servers:
                ping = Process(
                    ["orchestrator.tools.bench.servers", "ping"], child_env(attrs.evolve(base, server=server), {})
                )
                running.callback(ping.stop)
                floors.processes[server] = ping
                drive(ping.url, "ping", 1, min(1.0, args.duration), None)
        under_test: dict[Variant | None, UnderTest] = {}
        for variant in chosen:
            own = base
            if variant is not None:
                databases = make_databases() if args.postgres else base.databases
                own = attrs.evolve(
                    base,
                    server=variant.server,
                    http_transport=base.http_transport if variant.composed else variant.transport,
                    data_dir=str(Path(scratch) / _slug(variant)),
                    databases=databases,
                )
            print(f"starting {variant.name if variant else 'the running gateway'}", flush=True)
            flow = UnderTest(variant, own, args.gateway, args.users)
            running.callback(flow.stop)
            under_test[variant] = flow
        # Each level's rounds: every floor and every variant in turn.
        for level in levels:
            print(f"concurrency {level}", flush=True)
            for _round in range(args.rounds):
                floors.measure(level, slice_s)
                for flow in under_test.values():
                    flow.measure(level, level, slice_s)
        if args.open_loop > 0:
            rates = {}
            for variant, flow in under_test.items():
                best = max(combined(flow.rounds[level]).throughput for level in levels)
                rates[variant] = args.open_loop * best
            print("open loop at " + ", ".join(f"{rate:.0f}/s" for rate in rates.values()), flush=True)
            for _round in range(args.rounds):
                for variant, flow in under_test.items():
                    flow.measure(OPEN, args.open_connections, slice_s, rates[variant])
        results: dict[Variant | None, Results] = {variant: flow.results() for variant, flow in under_test.items()}
    report = Report(levels, results, floors.results(), database, args.open_loop)
    print(report.text())
    if args.plot and plot(args.plot, report):
        print(f"\nplot written to {args.plot}")
    print(f"\nbenchmark took {time.monotonic() - started:.0f} s")
    return 0 if report.clean() else 1
