"""``syncorders growth``: what a large database costs, measured against an empty one.

Two stacks run side by side on free ports, on their own fresh databases (SQLite files,
or PostgreSQL databases made on the server ``--postgres`` names and dropped after): one
empty, one prefilled by :mod:`orchestrator.tools.prefill`. On both, in alternating rounds so
that a shared machine that speeds up or slows down moves both alike, it measures
``POST /orders`` at each concurrency, a customer's first page of orders, and the time
``syncorders recover`` takes; on the prefilled one, also the pages of the customer with
the most orders, by offset and by cursor, at growing depths. It prints each figure for
both stacks and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from orchestrator.stats import percentile
from orchestrator.tools import prefill
from orchestrator.tools.supervisor import Stack
from services.common.config import SERVICES, Settings

# The stores that hold data: one database each on PostgreSQL.
DATA_SERVICES = ("auth", "profiles", "orders", "billing", "notifications")
PASSWORD = "growth measurement"
DEPTHS = (0, 100, 1000, 4000)


@attrs.frozen
class Client:
    user_id: str
    token: str


class Http:
    """One kept-alive connection to the gateway (each load thread has its own)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=headers)
        reply = self.conn.getresponse()
        raw = reply.read()
        return reply.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self.conn.close()


def _ok(status: int, body: Any, expected: int = 200) -> Any:
    if status != expected:
        raise RuntimeError(f"expected {expected}, got {status}: {body}")
    return body


def login(http: Http, name: str) -> str:
    body = _ok(*http.call("POST", "/auth/login", body={"login": name, "password": PASSWORD}))
    token: str = body["access_token"]
    return token


def new_customer(http: Http) -> Client:
    name = f"growth-{secrets.token_hex(5)}"
    registration = {
        "login": name,
        "password": PASSWORD,
        "email": f"{name}@example.com",
        "first_name": "Growth",
        "last_name": "Customer",
    }
    user = _ok(*http.call("POST", "/auth/register", body=registration), expected=201)
    token = login(http, name)
    _ok(*http.call("POST", "/wallet/deposits", token, {"amount": 10**11}), expected=201)
    return Client(user["id"], token)


def _order_body(client: Client) -> dict[str, Any]:
    return {"user_id": client.user_id, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}]}


def orders_for(url: str, clients: list[Client], seconds: float) -> list[float]:
    """``POST /orders`` back to back from one thread per client for ``seconds``; each
    answer's milliseconds."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(client: Client) -> None:
        http, mine = Http(url), []
        body = _order_body(client)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status, reply = http.call("POST", "/orders", client.token, body)
                if status != 201:
                    failures.append(f"{status} {reply}")
                    return
                mine.append((time.perf_counter() - started) * 1000)
        finally:
            http.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"orders failed: {failures[0]}")
    return latencies


def timed_gets(url: str, token: str, path: str, query: dict[str, Any], count: int) -> list[float]:
    http = Http(url)
    try:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            _ok(*http.call("GET", f"{path}?{urlencode(query)}", token))
            times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        http.close()


def recover_seconds(stack: Stack) -> tuple[float, str]:
    """One run of ``syncorders recover`` as an operator runs it: its wall time and report."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.tools.cli", "recover"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    return elapsed, " / ".join(line.strip() for line in done.stdout.splitlines()[:3])


@contextlib.contextmanager
def postgres_databases(base: str | None, tag: str) -> Iterator[dict[str, str]]:
    """A fresh database per data service on the server ``base`` names, dropped after."""
    if base is None:
        yield {}
        return
    import psycopg2

    prefix = base.rsplit("/", 1)[0]
    names = {service: f"growth_{tag}_{service}" for service in DATA_SERVICES}
    conn = psycopg2.connect(base)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in names.values():
                cur.execute(f'CREATE DATABASE "{name}"')
        yield {service: f"{prefix}/{name}" for service, name in names.items()}
    finally:
        with conn.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def stack_settings(data_dir: Path, databases: dict[str, str], threads: int) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        ports=dict.fromkeys(SERVICES, 0),
        databases=databases,
        threads=threads,
        login_max_failures=1_000_000,
    )


@attrs.define
class Figures:
    """Latencies per measurement, for the empty and the prefilled stack."""

    empty: dict[str, list[float]] = attrs.Factory(dict)
    full: dict[str, list[float]] = attrs.Factory(dict)

    def add(self, which: str, name: str, values: list[float]) -> None:
        getattr(self, which).setdefault(name, []).extend(values)


def _ms(values: list[float], fraction: float) -> float:
    return percentile(sorted(values), fraction) if values else float("nan")


def report(figures: Figures, recovery: dict[str, list[tuple[float, str]]], deep: dict[str, list[float]]) -> list[str]:
    lines = ["", f"{'measurement':<34} {'empty':>10} {'prefilled':>10} {'ratio':>7}"]
    for name, values in figures.full.items():
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            empty, full = _ms(figures.empty.get(name, []), fraction), _ms(values, fraction)
            lines.append(f"{name + ' ' + label + ' ms':<34} {empty:>10.2f} {full:>10.2f} {full / empty:>7.2f}")
    for which in ("empty", "full"):
        for number, (seconds, said) in enumerate(recovery[which], 1):
            lines.append(f"recover run {number} on the {which} stack: {seconds:.2f} s ({said})")
    lines.append("")
    lines.append("pages of the customer with the most orders (p50 ms, 20 a page):")
    for name, values in deep.items():
        lines.append(f"  {name:<30} {_ms(values, 0.5):>8.2f}")
    return lines


def measure(args: argparse.Namespace) -> int:
    work = Path(args.data_dir or tempfile.mkdtemp(prefix="syncorders-growth-"))
    tag = secrets.token_hex(3)
    with (
        postgres_databases(args.postgres, f"{tag}_empty") as empty_dbs,
        postgres_databases(args.postgres, f"{tag}_full") as full_dbs,
    ):
        settings = {
            "empty": stack_settings(work / "empty", empty_dbs, args.threads),
            "full": stack_settings(work / "full", full_dbs, args.threads),
        }
        plan = prefill.Plan(
            customers=args.customers,
            orders=args.orders,
            password=PASSWORD,
            pending=args.pending,
            heavy=min(5000, args.orders // 10),
            seed=args.seed,
        )
        print(f"prefilling {args.orders:,} orders over {args.customers:,} customers ...", flush=True)
        done = prefill.prefill(settings["full"], plan)
        print("\n".join(done.lines()), flush=True)
        stacks = {which: Stack(settings[which], log_dir=work / which / "logs") for which in settings}
        try:
            for stack in stacks.values():
                stack.start()
            return _measure(args, stacks, done)
        finally:
            for stack in stacks.values():
                stack.stop()


def _measure(args: argparse.Namespace, stacks: dict[str, Stack], done: prefill.Prefilled) -> int:
    urls = {which: stack.urls["gateway"] for which, stack in stacks.items()}
    most = max(args.levels)
    http = {which: Http(url) for which, url in urls.items()}
    # Ordinary customers (a hundred-odd orders each), not the heaviest one.
    clients = {
        "empty": [new_customer(http["empty"]) for _ in range(most)],
        "full": [Client(c.user_id, login(http["full"], c.login)) for c in done.customers[1 : most + 1]],
    }
    heavy = done.customers[0]
    heavy_token = login(http["full"], heavy.login)
    for which in stacks:
        orders_for(urls[which], clients[which], 1.0)  # warm up: connections, caches, the JIT of the OS
    figures = Figures()
    for round_number in range(args.rounds):
        order = ("empty", "full") if round_number % 2 == 0 else ("full", "empty")
        for level in args.levels:
            for which in order:
                latencies = orders_for(urls[which], clients[which][:level], args.duration)
                figures.add(which, f"POST /orders c={level}", latencies)
        for which in order:
            client = clients[which][0]
            figures.add(which, "GET /orders", timed_gets(urls[which], client.token, "/orders", {"limit": 20}, 50))
        print(f"  round {round_number + 1} of {args.rounds} done", flush=True)
    deep = _deep_pages(urls["full"], heavy_token)
    recovery = {which: [recover_seconds(stack), recover_seconds(stack)] for which, stack in stacks.items()}
    print("\n".join(report(figures, recovery, deep)))
    return 0


def _deep_pages(url: str, token: str) -> dict[str, list[float]]:
    """A page of 20 at each depth, asked by offset and by the cursor of the order just
    before it."""
    http = Http(url)
    ids: list[str] = []
    before = None
    while len(ids) <= max(DEPTHS):
        query: dict[str, Any] = {"limit": 100, **({"before": before} if before else {})}
        page = _ok(*http.call("GET", f"/orders?{urlencode(query)}", token))
        ids += [order["id"] for order in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    http.close()
    found: dict[str, list[float]] = {}
    for depth in DEPTHS:
        if depth >= len(ids):
            continue
        found[f"offset {depth}"] = timed_gets(url, token, "/orders", {"limit": 20, "offset": depth}, 50)
        cursor = {"limit": 20, **({"before": ids[depth - 1]} if depth else {})}
        found[f"cursor at {depth}"] = timed_gets(url, token, "/orders", cursor, 50)
    return found


def main(args: argparse.Namespace, settings: Settings) -> int:
    return measure(args)
