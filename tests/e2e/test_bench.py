"""The benchmark runs end to end (briefly, with a tiny load) so that it cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from orchestrator.tools.loadgen import parse_server_timing

SERVICES = {"gateway", "auth", "profiles", "orders", "billing", "notifications"}
VARIANTS = [
    "waitress, socket",
    "granian, socket",
    "waitress, socket, untraced",
    "granian, socket, untraced",
    "waitress, one process",
    "granian, one process",
]


def test_bench_compares_servers_tracing_and_one_process_and_writes_a_plot(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCORDERS_")}
    # This checkout's code, whatever the working directory (the plot's).
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    plot = tmp_path / "bench.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.tools.cli",
            "bench",
            "--duration",
            "1",
            "--levels",
            "1,2",
            "--rounds",
            "1",
            "--users",
            "2",
            "--transports",
            "socket",
            "--open-loop",
            "0.5",
            "--open-connections",
            "4",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for server in ("waitress", "granian"):
        assert re.search(rf"^{server} +1 +\d+ ", out, re.MULTILINE), f"no floor row for {server}"
        assert f"floor of an order at concurrency 1 on {server}: 6 x trivial p50" in out
    sections = out.split("\nPOST /orders, ")[1:]
    assert [section.split(" (", 1)[0] for section in sections] == VARIANTS
    for section in sections:
        rows = [line.split() for line in section.splitlines() if re.match(r"^ +(1|2|open) +[\d.]+ +[\d.]+ ", line)]
        assert [row[0] for row in rows] == ["1", "2", "open"], section
        assert all(float(row[1]) > 0 and row[6] == "0" for row in rows), section
        assert "orders neither paid nor cancelled afterwards: 0" in section
        cpu = [line for line in section.splitlines() if "; all " in line]
        assert len(cpu) == 3 and all(float(line.rsplit("; all ", 1)[1]) > 0 for line in cpu), section
        processes = {cell.rsplit(" ", 1)[0] for cell in cpu[0].split(None, 1)[1].split("; ")[0].split(", ")}
        assert processes == ({"one process"} if "one process" in section else SERVICES), section
    assert "open loop: " in out and "latency from each order's planned start" in out
    for server in ("waitress", "granian"):
        assert re.search(rf"the hops on {server} \(5 internal calls per order\): CPU per order at c=2 [\d.]+ ms", out)
        assert re.search(rf"tracing on {server}: orders/s at c=2 \d+ traced, \d+ untraced: costs -?[\d.]+%", out)
    summary = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [line.split(" | ")[0][2:] for line in summary] == VARIANTS
    assert "Targets:" in out and "orders neither paid nor cancelled: 0: met" in out
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_server_timing_entries_are_parsed() -> None:
    header = 's2;desc="authorize";dur=0.05, s3;desc="create_order";dur=1.25, app;dur=7.5'
    assert parse_server_timing(header) == {"s2": 0.05, "s3": 1.25, "app": 7.5}
