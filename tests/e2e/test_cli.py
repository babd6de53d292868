"""The console command as a user runs it: ``run`` (all six, Ctrl-C stops them, a crash
is reported), ``demo`` against a running gateway, ``serve`` one service."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from orchestrator.tools.supervisor import Stack
from services.common.config import SERVICES


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def start_run(tmp_path: Path, sigint_ignored: bool = False, **settings: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCORDERS_")}
    env.update({f"SYNCORDERS_{name.upper()}": value for name, value in settings.items()})
    env["SYNCORDERS_DATA_DIR"] = str(tmp_path)
    env["SYNCORDERS_PASSWORD_HASH_MEMORY"] = "1024"
    env["SYNCORDERS_PASSWORD_HASH_TIME"] = "1"
    env.update({f"SYNCORDERS_{service.upper()}_PORT": "0" for service in SERVICES})
    run = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.tools.cli", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        # A shell's "cmd &" starts it with SIGINT ignored.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )
    assert run.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = run.stdout.readline()
        lines.append(line)
        found = re.search(r"the gateway is at (http://\S+)", line)
        if found:
            return run, found.group(1)
    run.kill()
    raise AssertionError("run did not come up:\n" + "".join(lines))


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "started-in-background"])
def test_run_starts_all_six_and_ctrl_c_stops_them_all(tmp_path: Path, sigint_ignored: bool) -> None:
    run, gateway = start_run(tmp_path, sigint_ignored)
    try:
        services = children(run.pid)
        assert len(services) == 6
        assert requests.get(f"{gateway}/ready", timeout=10).json()["status"] == "ready"
        assert {p.name for p in tmp_path.glob("*.db")} == {f"{s}.db" for s in SERVICES if s != "gateway"}
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=30) == 0
        time.sleep(0.5)
        assert not [pid for pid in services if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    finally:
        if run.poll() is None:
            run.kill()


def test_a_second_ctrl_c_cuts_the_drain_short_without_a_traceback(tmp_path: Path) -> None:
    # Each service keeps its listener 8 s after the first signal: the stop is slow on purpose.
    run, _gateway = start_run(tmp_path, shutdown_delay="8")
    try:
        services = children(run.pid)
        run.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert run.poll() is None and all(Path(f"/proc/{pid}").exists() for pid in services)
        second = time.monotonic()
        run.send_signal(signal.SIGINT)
        run.send_signal(signal.SIGINT)  # a third changes nothing
        assert run.wait(timeout=30) == 0
        assert time.monotonic() - second < 5
        output = run.stdout.read() if run.stdout else ""
        assert "cutting requests still in flight" in output
        assert "Traceback" not in output, output
        time.sleep(0.5)
        assert not [pid for pid in services if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    finally:
        if run.poll() is None:
            run.kill()


def test_run_reports_a_crashed_service_and_stops_the_rest(tmp_path: Path) -> None:
    run, _gateway = start_run(tmp_path)
    try:
        services = children(run.pid)
        billing = next(pid for pid in services if b"billing" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(billing, signal.SIGKILL)
        assert run.wait(timeout=30) == 1
        output = run.stdout.read() if run.stdout else ""
        assert "billing exited with code -9" in output
        time.sleep(0.5)
        assert not [pid for pid in services if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    finally:
        if run.poll() is None:
            run.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except OSError:
        return "Z"


def test_demo_walks_the_scenario_against_a_running_gateway(tmp_path: Path) -> None:
    from tests.harness import start_stack

    stack: Stack = start_stack(tmp_path)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator.tools.cli", "demo", "--gateway", stack.urls["gateway"]],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stack.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The scenario went as designed." in done.stdout
    for heading in ("1. Register", "4. An order the wallet covers", "5. An order it cannot cover", "8. My letters"):
        assert heading in done.stdout
