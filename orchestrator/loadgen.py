"""The benchmark's load generator, run as its own process so that its CPU is not the
services' CPU and can be reported on its own.

Each worker thread holds one keep-alive connection (plain ``http.client``: the cheapest
Python client) and sends requests back to back for a bounded time. It prints one JSON
object: counts, latencies, per-step times from ``Server-Timing``, and its own CPU time.

    python -m orchestrator.loadgen --url http://127.0.0.1:8000 --mode orders \
        --concurrency 8 --duration 10 --users users.json
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import resource
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import attrs


@attrs.define
class Tally:
    latencies: list[float] = attrs.Factory(list)
    errors: dict[str, int] = attrs.Factory(dict)
    steps: dict[str, float] = attrs.Factory(dict)
    timed: int = 0
    statuses: dict[str, int] = attrs.Factory(dict)
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


def _worker(url: str, mode: str, user: dict[str, str] | None, deadline: float, tally: Tally) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    if mode == "orders":
        assert user is not None
        method, path = "POST", "/orders"
        body: bytes | None = json.dumps(
            {"user_id": user["user_id"], "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]}
        ).encode()
        headers = {"Authorization": f"Bearer {user['token']}", "Content-Type": "application/json"}
        expected = 201
    else:
        method, path, body, headers, expected = "GET", "/ping", None, {}, 200
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as exc:
            tally.add(0.0, 0, None, type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
            continue
        latency = (time.perf_counter() - started) * 1000
        error = None if resp.status == expected else f"HTTP {resp.status}"
        tally.add(latency, resp.status, resp.getheader("Server-Timing"), error)
    conn.close()


def run(url: str, mode: str, concurrency: int, duration: float, users: list[dict[str, str]]) -> dict[str, Any]:
    tally = Tally()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    deadline = started + duration
    threads = [
        threading.Thread(
            target=_worker, args=(url, mode, users[i % len(users)] if users else None, deadline, tally), daemon=True
        )
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 60)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "mode": mode,
        "concurrency": concurrency,
        "wall_s": wall,
        "ok": len(tally.latencies),
        "errors": tally.errors,
        "statuses": tally.statuses,
        "latencies_ms": sorted(tally.latencies),
        "step_ms_total": tally.steps,
        "timed": tally.timed,
        "cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("orders", "ping"), required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--users", help="JSON file: [{user_id, token}, ...]")
    args = parser.parse_args(argv)
    users = []
    if args.users:
        with open(args.users, encoding="utf-8") as source:
            users = json.load(source)
    json.dump(run(args.url, args.mode, args.concurrency, args.duration, users), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
