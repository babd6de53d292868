"""What the benchmark measures with: the load generator's results, the processes' CPU
time and memory, the stacks under test (six processes, or one composed), customers."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import requests

from orchestrator.stats import percentile
from orchestrator.tools.supervisor import Stack, _await_listening
from services.common.config import Settings

WALLET_FUNDS = 10**11


@attrs.frozen
class Level:
    """One load: closed loop at a concurrency, or open loop at a rate."""

    concurrency: int
    ok: int
    errors: int
    wall_s: float
    cpu_s: float
    latencies: list[float]
    steps: dict[str, float]
    # Orders whose answer carried Server-Timing: the weight of ``steps``.
    timed: int = 0
    # Open loop: the planned rate, and requests that could not start on time.
    rate: float | None = None
    late: int = 0
    latest_ms: float = 0.0
    error_kinds: dict[str, int] = attrs.Factory(dict)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        return percentile(self.latencies, fraction)

    @property
    def cpu_share(self) -> float:
        """The load generator's CPU, as a share of one core."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def queued_ms(self) -> float:
        """Mean time between the client's clock and the gateway's own (``app`` in its
        Server-Timing): the wire, and the wait for a thread to take the request."""
        return self.steps.get("client", 0.0) - self.steps.get("app", 0.0)


def level_of(raw: dict[str, Any]) -> Level:
    timed = max(1, raw["timed"])
    return Level(
        raw["concurrency"],
        raw["ok"],
        sum(raw["errors"].values()),
        raw["wall_s"],
        raw["cpu_s"],
        raw["latencies_ms"],
        {name: total / timed for name, total in raw["step_ms_total"].items()},
        raw["timed"],
        raw.get("rate"),
        raw.get("late", 0),
        raw.get("latest_ms", 0.0),
        dict(raw["errors"]),
    )


def combined(parts: list[Level]) -> Level:
    """The rounds of one load as one measurement."""
    timed = sum(part.timed for part in parts)
    names = {name for part in parts for name in part.steps}
    kinds: dict[str, int] = {}
    for part in parts:
        for kind, count in part.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
    return Level(
        parts[0].concurrency,
        sum(part.ok for part in parts),
        sum(part.errors for part in parts),
        sum(part.wall_s for part in parts),
        sum(part.cpu_s for part in parts),
        sorted(latency for part in parts for latency in part.latencies),
        {name: sum(part.steps.get(name, 0.0) * part.timed for part in parts) / max(1, timed) for name in names},
        timed,
        parts[0].rate,
        sum(part.late for part in parts),
        max(part.latest_ms for part in parts),
        kinds,
    )


def loadgen(
    url: str, mode: str, concurrency: int, duration: float, users_file: str | None, rate: float | None = None
) -> Level:
    command = [sys.executable, "-m", "orchestrator.tools.loadgen", "--url", url, "--mode", mode]
    command += ["--concurrency", str(concurrency), "--duration", str(duration)]
    if users_file:
        command += ["--users", users_file]
    if rate is not None:
        command += ["--rate", f"{rate:.3f}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=True)
    return level_of(json.loads(done.stdout))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (Linux's /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def http_session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def prepare_users(gateway: str, count: int) -> list[dict[str, str]]:
    """Registered, logged-in customers with wallets large enough for any run."""
    http = http_session()
    users = []
    for _ in range(count):
        login = f"bench-{secrets.token_hex(5)}"
        password = secrets.token_urlsafe(12)
        registration = {
            "login": login,
            "password": password,
            "email": f"{login}@example.com",
            "first_name": "Bench",
            "last_name": "User",
        }
        user = http.post(f"{gateway}/auth/register", timeout=30, json=registration).json()
        token = http.post(f"{gateway}/auth/login", timeout=30, json={"login": login, "password": password}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        deposit = http.post(f"{gateway}/wallet/deposits", timeout=30, headers=auth, json={"amount": WALLET_FUNDS})
        deposit.raise_for_status()
        users.append({"user_id": user["id"], "token": token["access_token"]})
    return users


def unfinished_orders(gateway: str, users: list[dict[str, str]]) -> int:
    """Orders of the benchmark's users that are neither paid nor cancelled."""
    http = http_session()
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


@attrs.frozen
class Variant:
    """One way of running the flow: its server, its internal client (``inprocess``: the
    six apps composed in one process) and whether it traces."""

    server: str
    transport: str
    traced: bool = True

    @property
    def composed(self) -> bool:
        return self.transport == "inprocess"

    @property
    def name(self) -> str:
        if self.composed:
            return f"{self.server}, one process" + ("" if self.traced else ", untraced")
        return f"{self.server}, {self.transport}" + ("" if self.traced else ", untraced")

    def environment(self) -> dict[str, str]:
        return {"OTEL_SDK_DISABLED": "false" if self.traced else "true"}


class Process:
    """A server the benchmark started (its ping route, or the composed stack)."""

    def __init__(self, module_args: list[str], env: dict[str, str], log: Path | None = None) -> None:
        stderr = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child's
        self.popen = subprocess.Popen(
            [sys.executable, "-m", *module_args], stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        if log is not None:
            stderr.close()  # type: ignore[union-attr]
        try:
            self.url = _await_listening(self.popen, "gateway", 60)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCORDERS_")}
    env.update(settings.to_env())
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class UnderTest:
    """One variant's stack, started here, or a running gateway: measured load by load,
    each process's CPU per order, and at the end its memory and how many orders stayed
    neither paid nor cancelled (must be 0)."""

    def __init__(self, variant: Variant | None, settings: Settings, gateway: str | None, users: int) -> None:
        self.variant = variant
        self.stack: Stack | None = None
        self.composed: Process | None = None
        self.pids: dict[str, int] = {}
        logs = Path(settings.data_dir) / "logs"
        if gateway is None:
            assert variant is not None
            if variant.composed:
                logs.mkdir(parents=True, exist_ok=True)
                self.composed = Process(
                    ["orchestrator.tools.bench.servers", "composed"],
                    child_env(settings, variant.environment()),
                    logs / "composed.log",
                )
                gateway = self.composed.url
                self.pids = {"one process": self.composed.popen.pid}
            else:
                self.stack = Stack(settings, log_dir=logs, extra_env=variant.environment()).start()
                gateway = self.stack.urls["gateway"]
                self.pids = {name: p.popen.pid for name, p in self.stack.processes.items()}
        self.gateway = gateway
        self.users = prepare_users(gateway, users)
        self.users_file = str(Path(settings.data_dir) / "bench-users.json")
        Path(self.users_file).write_text(json.dumps(self.users))
        self.rounds: dict[Any, list[Level]] = {}
        self.cpu_s: dict[Any, dict[str, float]] = {}
        # Warm up: connections, caches, the first JIT-less paths of every route.
        loadgen(gateway, "orders", 2, 1.0, self.users_file)

    def measure(self, key: Any, concurrency: int, duration: float, rate: float | None = None) -> Level:
        """One round of a load; the rounds of one ``key`` add up."""
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        result = loadgen(self.gateway, "orders", concurrency, duration, self.users_file, rate)
        self.rounds.setdefault(key, []).append(result)
        used = self.cpu_s.setdefault(key, dict.fromkeys(self.pids, 0.0))
        for name, pid in self.pids.items():
            used[name] += cpu_seconds(pid) - before[name]
        return result

    def results(self) -> Results:
        loads = {key: combined(parts) for key, parts in self.rounds.items()}
        cpu_ms = {
            key: {name: seconds * 1000 / max(1, loads[key].ok) for name, seconds in used.items()}
            for key, used in self.cpu_s.items()
        }
        rss = {name: rss_mb(pid) for name, pid in self.pids.items()}
        return Results(loads, cpu_ms, rss, unfinished_orders(self.gateway, self.users))

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        if self.composed is not None:
            self.composed.stop()
            self.composed = None


@attrs.frozen
class Results:
    """A variant's measurements: by load (a concurrency, or ``"open"``)."""

    loads: dict[Any, Level]
    # Each process's CPU milliseconds per order, by load (a stack started here).
    cpu_ms: dict[Any, dict[str, float]]
    rss_mb: dict[str, float]
    unfinished: int

    def cpu_per_order(self, key: Any) -> float:
        return sum(self.cpu_ms.get(key, {}).values()) if key in self.cpu_ms else float("nan")
