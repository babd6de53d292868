"""The benchmark runs end to end (briefly, with a tiny load) so that it cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.loadgen import parse_server_timing


def test_bench_command_measures_ceiling_and_flow_and_writes_a_plot(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCORDERS_")}
    plot = tmp_path / "bench.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "bench",
            "--duration",
            "1",
            "--levels",
            "1,2",
            "--rounds",
            "2",
            "--users",
            "2",
            "--transports",
            "socket,requests",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Trivial Falcon JSON route on waitress" in out
    assert "internal client: socket" in out and "internal client: requests" in out
    assert "floor of an order at concurrency 1: 7 x trivial p50" in out
    assert "orders neither paid nor cancelled afterwards: 0" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "2 "))]
    flow_rows = [row for row in rows if len(row) == 9]
    assert len(flow_rows) == 4 and all(float(row[1]) > 0 and row[5] == "0" for row in flow_rows)
    assert "RSS after the run (MB): profiles" in out
    # Every process of the stack used some CPU for the orders, and the total adds up.
    cpu_rows = [line for line in out.splitlines() if line.strip().startswith("c=") and "; all " in line]
    assert len(cpu_rows) == 4
    for row in cpu_rows:
        cells = dict(cell.rsplit(" ", 1) for cell in row.split(None, 1)[1].split("; ")[0].split(", "))
        assert set(cells) == {"gateway", "auth", "profiles", "orders", "billing", "notifications"}
        assert float(row.rsplit("; all ", 1)[1]) > 0
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_server_timing_entries_are_parsed() -> None:
    header = 's2;desc="authorize";dur=0.05, s3;desc="create_order";dur=1.25, app;dur=7.5'
    assert parse_server_timing(header) == {"s2": 0.05, "s3": 1.25, "app": 7.5}
