"""``syncorders bench``: the order flow's throughput and latency against the stack's own
ceiling, measured in one run.

The ceiling is a trivial Falcon JSON route on waitress with the same server settings,
driven the same way; one order costs seven HTTP requests in a row, so
``ceiling = trivial req/s ÷ 7``. Absolute figures move with the machine; the ratios
from one run are what to compare. The load comes from a separate process
(:mod:`orchestrator.loadgen`) whose own CPU share is printed, to show it is not the
bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import falcon
import requests

from orchestrator.flow import FLOW
from orchestrator.stats import percentile
from orchestrator.supervisor import Stack, _await_listening
from services.common.config import SERVICES, Settings

HTTP_REQUESTS_PER_ORDER = 7
WALLET_FUNDS = 10**11


@attrs.frozen
class Level:
    concurrency: int
    ok: int
    errors: int
    wall_s: float
    cpu_s: float
    latencies: list[float]
    steps: dict[str, float]
    # Orders whose answer carried Server-Timing: the weight of ``steps``.
    timed: int = 0

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        return percentile(self.latencies, fraction)

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def _level(raw: dict[str, Any]) -> Level:
    timed = max(1, raw["timed"])
    steps = {name: total / timed for name, total in raw["step_ms_total"].items()}
    return Level(
        raw["concurrency"],
        raw["ok"],
        sum(raw["errors"].values()),
        raw["wall_s"],
        raw["cpu_s"],
        raw["latencies_ms"],
        steps,
        raw["timed"],
    )


def combined(parts: list[Level]) -> Level:
    """The rounds of one level as one measurement."""
    timed = sum(part.timed for part in parts)
    names = {name for part in parts for name in part.steps}
    return Level(
        parts[0].concurrency,
        sum(part.ok for part in parts),
        sum(part.errors for part in parts),
        sum(part.wall_s for part in parts),
        sum(part.cpu_s for part in parts),
        sorted(latency for part in parts for latency in part.latencies),
        {name: sum(part.steps.get(name, 0.0) * part.timed for part in parts) / max(1, timed) for name in names},
        timed,
    )


def _loadgen(url: str, mode: str, concurrency: int, duration: float, users_file: str | None) -> Level:
    command = [
        sys.executable,
        "-m",
        "orchestrator.loadgen",
        "--url",
        url,
        "--mode",
        mode,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
    ]
    if users_file:
        command += ["--users", users_file]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=True)
    return _level(json.loads(done.stdout))


class Ping:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


def serve_ping() -> None:
    """The ceiling's server: one trivial JSON route, the gateway's waitress settings."""
    from services.common.server import serve

    app = falcon.App()
    app.add_route("/ping", Ping())
    serve(app, "gateway", Settings.from_env(), port=0)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (Linux's /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def prepare_users(gateway: str, count: int) -> list[dict[str, str]]:
    """Registered, logged-in customers with wallets large enough for any run."""
    http = requests.Session()
    http.trust_env = False
    users = []
    for _ in range(count):
        login = f"bench-{secrets.token_hex(5)}"
        password = secrets.token_urlsafe(12)
        user = http.post(
            f"{gateway}/auth/register",
            timeout=30,
            json={
                "login": login,
                "password": password,
                "email": f"{login}@example.com",
                "first_name": "Bench",
                "last_name": "User",
            },
        ).json()
        token = http.post(f"{gateway}/auth/login", timeout=30, json={"login": login, "password": password}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        http.post(
            f"{gateway}/wallet/deposits", timeout=30, headers=auth, json={"amount": WALLET_FUNDS}
        ).raise_for_status()
        users.append({"user_id": user["id"], "token": token["access_token"]})
    return users


@contextlib.contextmanager
def ping_server(settings: Settings) -> Iterator[str]:
    """The ceiling's server, warmed up, for the whole run."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    popen = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.bench", "ping-server"],
        stdout=subprocess.PIPE,
        # waitress warns of its queue depth at high concurrency: that is the point here.
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        url = _await_listening(popen, "gateway", 30)
        yield url
    finally:
        popen.terminate()
        popen.wait(timeout=10)


@attrs.frozen
class FlowRun:
    levels: dict[int, Level]
    # Each service's CPU milliseconds per order, per level (a stack the benchmark started).
    cpu_ms: dict[int, dict[str, float]]
    rss_mb: dict[str, float]
    unfinished: int


class Flow:
    """One stack under load (started here, or a running gateway), measured level by
    level: orders, each process's CPU per order, and afterwards the RSS and how many
    orders stayed neither paid nor cancelled (must be 0)."""

    def __init__(self, settings: Settings, gateway: str | None, users_count: int, duration: float) -> None:
        self.stack = None
        if gateway is None:
            self.stack = Stack(settings, log_dir=Path(settings.data_dir) / "logs").start()
            gateway = self.stack.urls["gateway"]
        self.gateway = gateway
        self.users = prepare_users(gateway, users_count)
        self.users_file = str(Path(settings.data_dir) / "bench-users.json")
        Path(self.users_file).write_text(json.dumps(self.users))
        self.pids = {name: p.popen.pid for name, p in self.stack.processes.items()} if self.stack else {}
        self.rounds: dict[int, list[Level]] = {}
        self.cpu_s: dict[int, dict[str, float]] = {}
        _loadgen(gateway, "orders", 1, min(1.0, duration), self.users_file)

    def measure(self, level: int, duration: float) -> None:
        """One round at ``level``; rounds of a level add up."""
        before = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        self.rounds.setdefault(level, []).append(_loadgen(self.gateway, "orders", level, duration, self.users_file))
        used = self.cpu_s.setdefault(level, dict.fromkeys(self.pids, 0.0))
        for name, pid in self.pids.items():
            used[name] += _cpu_seconds(pid) - before[name]

    def finish(self) -> FlowRun:
        try:
            levels = {level: combined(parts) for level, parts in self.rounds.items()}
            cpu_ms = {
                level: {name: seconds * 1000 / max(1, levels[level].ok) for name, seconds in used.items()}
                for level, used in self.cpu_s.items()
            }
            rss = {name: _rss_mb(pid) for name, pid in self.pids.items()}
            return FlowRun(levels, cpu_ms, rss, _unfinished_orders(self.gateway, self.users))
        finally:
            self.stop()

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None


def _unfinished_orders(gateway: str, users: list[dict[str, str]]) -> int:
    """Orders of the benchmark's users that are neither paid nor cancelled."""
    http = requests.Session()
    http.trust_env = False
    unfinished = 0
    for user in users:
        offset = 0
        while True:
            page = http.get(
                f"{gateway}/orders",
                timeout=30,
                params={"limit": 100, "offset": offset},
                headers={"Authorization": f"Bearer {user['token']}"},
            ).json()["items"]
            unfinished += sum(order["status"] not in ("paid", "cancelled") for order in page)
            if len(page) < 100:
                break
            offset += 100
    return unfinished


def report(ceiling: dict[int, Level], flows: dict[str, FlowRun]) -> str:
    lines = [
        "",
        "Trivial Falcon JSON route on waitress (the ceiling's base):",
        f"{'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'loadgen CPU':>12}",
    ]
    for level, result in ceiling.items():
        lines.append(
            f"{level:>5} {result.rate:>9.0f} {result.percentile(0.5):>8.2f} {result.percentile(0.99):>8.2f} "
            f"{result.errors:>7} {result.cpu_share:>11.0%}"
        )
    if 1 in ceiling:
        floor = HTTP_REQUESTS_PER_ORDER * ceiling[1].percentile(0.5)
        lines.append(f"  floor of an order at concurrency 1: {HTTP_REQUESTS_PER_ORDER} x trivial p50 = {floor:.2f} ms")
    for transport, run in flows.items():
        levels = run.levels
        lines += [
            "",
            f"POST /orders through the gateway (internal client: {transport}):",
            f"{'conc':>5} {'orders/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'ceiling':>8} {'ratio':>6} {'loadgen CPU':>12}",
        ]
        for level, result in levels.items():
            cap = ceiling[level].rate / HTTP_REQUESTS_PER_ORDER if level in ceiling else float("nan")
            lines.append(
                f"{level:>5} {result.rate:>9.1f} {result.percentile(0.5):>8.2f} {result.percentile(0.95):>8.2f} "
                f"{result.percentile(0.99):>8.2f} {result.errors:>7} {cap:>8.1f} {result.rate / cap:>6.2f} "
                f"{result.cpu_share:>11.0%}"
            )
        lines.append("  mean ms per step (step 1 = client<->gateway transport, from the client's clock):")
        for level, result in levels.items():
            steps = dict(result.steps)
            transport_ms = steps.get("client", 0.0) - steps.get("app", 0.0)
            cells = [f"1:{transport_ms:.2f}"] + [
                f"{step.number}:{steps.get(f's{step.number}', 0.0):.2f}" for step in FLOW if step.number > 1
            ]
            lines.append(f"  c={level:<3} " + " ".join(cells))
        if run.cpu_ms:
            lines.append("  CPU ms per order, by process (the load generator's apart):")
            for level, by_service in run.cpu_ms.items():
                cells = [f"{name} {ms:.2f}" for name, ms in by_service.items()]
                lines.append(f"  c={level:<3} " + ", ".join(cells) + f"; all {sum(by_service.values()):.2f}")
        if run.rss_mb:
            rss = ", ".join(f"{name} {mb:.1f}" for name, mb in run.rss_mb.items())
            lines.append(f"  RSS after the run (MB): {rss}")
        lines.append(f"  orders neither paid nor cancelled afterwards: {run.unfinished}")
    return "\n".join(lines)


def plot(path: str, flows: dict[str, FlowRun], ceiling: dict[int, Level]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    # One colour per transport on both sides; p50 solid, p99 dashed.
    for index, (transport, run) in enumerate(flows.items()):
        levels, colour = run.levels, f"C{index}"
        xs = list(levels)
        left.plot(xs, [levels[x].rate for x in xs], color=colour, marker="o", label=f"orders/s ({transport})")
        for fraction, style in ((0.5, "-"), (0.99, "--")):
            right.plot(
                xs,
                [levels[x].percentile(fraction) for x in xs],
                style,
                color=colour,
                marker="o",
                label=f"p{int(fraction * 100)} ({transport})",
            )
    xs = list(ceiling)
    left.plot(
        xs,
        [ceiling[x].rate / HTTP_REQUESTS_PER_ORDER for x in xs],
        ":",
        color="black",
        marker="s",
        label="ceiling (trivial/7)",
    )
    left.set(xlabel="concurrency", ylabel="orders per second", xscale="log", title="Throughput")
    right.set(xlabel="concurrency", ylabel="latency, ms", xscale="log", title="Latency of POST /orders")
    for axis in (left, right):
        axis.set_xticks(xs, [str(x) for x in xs])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", default=None, help="measure a running gateway instead of starting a stack")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per level, for the ceiling and each flow (default 10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="turns the ceiling and the flows take at each level (default 5)"
    )
    parser.add_argument("--users", type=int, default=32, help="customers sending orders (default 32)")
    parser.add_argument("--transports", default="socket,urllib3,requests", help="internal clients to compare")
    parser.add_argument("--plot", default="bench-results/bench.png", help="PNG to write ('' for none)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    levels = [int(level) for level in args.levels.split(",")]
    if args.rounds < 1 or args.duration <= 0:
        raise SystemExit("bench: --rounds must be at least 1 and --duration positive")
    transports = args.transports.split(",") if args.gateway is None else ["as configured"]
    print(
        f"benchmark: levels {levels}, {args.duration:g} s each in {args.rounds} rounds, {args.users} customers, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="syncorders-bench-") as scratch, contextlib.ExitStack() as running:
        base = attrs.evolve(settings, data_dir=scratch, ports=dict.fromkeys(SERVICES, 0), databases={})
        ping = running.enter_context(ping_server(base))
        _loadgen(ping, "ping", 1, min(1.0, args.duration), None)
        under_test: dict[str, Flow] = {}
        for transport in transports:
            run_settings = (
                base
                if args.gateway
                else attrs.evolve(base, http_transport=transport, data_dir=str(Path(scratch) / transport))
            )
            under_test[transport] = flow = Flow(run_settings, args.gateway, args.users, args.duration)
            running.callback(flow.stop)
        # The ceiling and the flows take turns in short rounds at each level, so a
        # machine that slows down or speeds up during the run moves them alike.
        ceiling = {}
        slice_s = args.duration / args.rounds
        for level in levels:
            trivial = []
            for _round in range(args.rounds):
                trivial.append(_loadgen(ping, "ping", level, slice_s, None))
                for flow in under_test.values():
                    flow.measure(level, slice_s)
            ceiling[level] = combined(trivial)
        flows = {transport: flow.finish() for transport, flow in under_test.items()}
    print(report(ceiling, flows))
    if args.plot and plot(args.plot, flows, ceiling):
        print(f"\nplot written to {args.plot}")
    print(f"\nbenchmark took {time.monotonic() - started:.0f} s")
    failed = any(result.errors for run in flows.values() for result in run.levels.values())
    unfinished = sum(run.unfinished for run in flows.values())
    return 1 if failed or unfinished else 0


if __name__ == "__main__" and sys.argv[1:] == ["ping-server"]:
    serve_ping()
