"""The benchmark's load generator, run as its own process so that its CPU is not the
services' CPU and can be reported on its own.

Closed loop (the default): each of ``--concurrency`` threads holds one keep-alive
connection (plain ``http.client``: the cheapest Python client) and sends requests back
to back for a bounded time. Open loop (``--rate``): requests are planned at a fixed rate
from the start, whatever the answers do, and sent by up to ``--concurrency`` threads;
each latency is measured from the request's planned start, so time spent waiting for a
free connection, when the service falls behind, is counted rather than hidden
(coordinated omission).

It prints one JSON object: counts, latencies, per-step times from ``Server-Timing``,
and its own CPU time.

    python -m orchestrator.tools.loadgen --url http://127.0.0.1:8000 --mode orders \
        --concurrency 8 --duration 10 --users users.json [--rate 300]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import attrs

# An open-loop request sent more than this after its planned start started late.
LATE_MS = 1.0


@attrs.define
class Tally:
    latencies: list[float] = attrs.Factory(list)
    errors: dict[str, int] = attrs.Factory(dict)
    steps: dict[str, float] = attrs.Factory(dict)
    timed: int = 0
    statuses: dict[str, int] = attrs.Factory(dict)
    # Open loop: requests that could not start on time (no free connection), and the
    # longest such wait.
    late: int = 0
    latest_ms: float = 0.0
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, latency_ms: float, status: int, timing: str | None, error: str | None) -> None:
        with self.lock:
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            if error is not None:
                self.errors[error] = self.errors.get(error, 0) + 1
                return
            self.latencies.append(latency_ms)
            if timing:
                self.timed += 1
                for name, ms in parse_server_timing(timing).items():
                    self.steps[name] = self.steps.get(name, 0.0) + ms
                self.steps["client"] = self.steps.get("client", 0.0) + latency_ms

    def started_late(self, by_ms: float) -> None:
        with self.lock:
            self.late += 1
            self.latest_ms = max(self.latest_ms, by_ms)


def parse_server_timing(header: str) -> dict[str, float]:
    """``s3;desc="create_order";dur=1.20, app;dur=5.1`` → ``{"s3": 1.2, "app": 5.1}``."""
    found: dict[str, float] = {}
    for entry in header.split(","):
        parts = [part.strip() for part in entry.split(";")]
        for part in parts[1:]:
            if part.startswith("dur="):
                with contextlib.suppress(ValueError):
                    found[parts[0]] = float(part[4:])
    return found


@attrs.frozen
class Target:
    """Where requests go and what a good answer is."""

    host: str
    port: int
    method: str
    path: str
    expected: int

    def request(self, user: dict[str, str] | None) -> tuple[bytes | None, dict[str, str]]:
        if self.method == "GET":
            return None, {}
        assert user is not None
        body = json.dumps(
            {"user_id": user["user_id"], "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]}
        ).encode()
        return body, {"Authorization": f"Bearer {user['token']}", "Content-Type": "application/json"}


def target(url: str, mode: str) -> Target:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if mode == "orders":
        return Target(host, port, "POST", "/orders", 201)
    return Target(host, port, "GET", "/ping", 200)


class _Connection:
    """One keep-alive connection, made again after a failure."""

    def __init__(self, where: Target) -> None:
        self.where = where
        self.conn = self._new()

    def _new(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.where.host, self.where.port, timeout=30)

    def send(self, body: bytes | None, headers: dict[str, str], started: float, tally: Tally) -> None:
        """One request; its latency counted from ``started`` (a ``perf_counter`` time)."""
        try:
            self.conn.request(self.where.method, self.where.path, body=body, headers=headers)
            resp = self.conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as exc:
            tally.add(0.0, 0, None, type(exc).__name__)
            self.conn.close()
            self.conn = self._new()
            return
        latency = (time.perf_counter() - started) * 1000
        error = None if resp.status == self.where.expected else f"HTTP {resp.status}"
        tally.add(latency, resp.status, resp.getheader("Server-Timing"), error)

    def close(self) -> None:
        self.conn.close()


def _closed_worker(where: Target, user: dict[str, str] | None, deadline: float, tally: Tally) -> None:
    conn = _Connection(where)
    body, headers = where.request(user)
    while time.monotonic() < deadline:
        conn.send(body, headers, time.perf_counter(), tally)
    conn.close()


def _open_worker(
    where: Target,
    users: list[dict[str, str]],
    plan: Callable[[], tuple[int, float] | None],
    tally: Tally,
) -> None:
    conn = _Connection(where)
    requests = [where.request(user) for user in users] or [where.request(None)]
    while (planned := plan()) is not None:
        number, start = planned
        wait = start - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif -wait * 1000 > LATE_MS:
            tally.started_late(-wait * 1000)
        body, headers = requests[number % len(requests)]
        conn.send(body, headers, start, tally)
    conn.close()


def _planner(rate: float, started: float, duration: float) -> Callable[[], tuple[int, float] | None]:
    """The next request's number and planned start, or None once the run is over."""
    numbers: Iterator[int] = itertools.count()
    last = int(rate * duration)
    lock = threading.Lock()

    def plan() -> tuple[int, float] | None:
        with lock:
            number = next(numbers)
        return None if number >= last else (number, started + number / rate)

    return plan


def run(
    url: str,
    mode: str,
    concurrency: int,
    duration: float,
    users: list[dict[str, str]],
    rate: float | None = None,
) -> dict[str, Any]:
    tally = Tally()
    where = target(url, mode)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    if rate is None:
        deadline = started + duration
        threads = [
            threading.Thread(
                target=_closed_worker, args=(where, users[i % len(users)] if users else None, deadline, tally)
            )
            for i in range(concurrency)
        ]
    else:
        plan = _planner(rate, time.perf_counter() + 0.05, duration)
        threads = [threading.Thread(target=_open_worker, args=(where, users, plan, tally)) for _ in range(concurrency)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 60)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "mode": mode,
        "concurrency": concurrency,
        "rate": rate,
        "wall_s": wall,
        "ok": len(tally.latencies),
        "errors": tally.errors,
        "statuses": tally.statuses,
        "latencies_ms": sorted(tally.latencies),
        "step_ms_total": tally.steps,
        "timed": tally.timed,
        "late": tally.late,
        "latest_ms": tally.latest_ms,
        "cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.tools.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("orders", "ping"), required=True)
    parser.add_argument("--concurrency", type=int, required=True, help="connections (threads)")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second, planned")
    parser.add_argument("--users", help="JSON file: [{user_id, token}, ...]")
    args = parser.parse_args(argv)
    users = []
    if args.users:
        with open(args.users, encoding="utf-8") as source:
            users = json.load(source)
    json.dump(run(args.url, args.mode, args.concurrency, args.duration, users, args.rate), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
