"""The README's first command on a fresh clone, as a newcomer types it on Debian, where
the only Python is the distribution's own and its pip refuses to install outside a
virtual environment (PEP 668): the command makes its own environment, installs into it
from the package index pip is configured with, and starts the stack, which takes an
order through the public API and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from services.common.config import INTERNAL_SERVICES, SERVICES
from tests.harness import Gateway, make_postgres_databases, postgres_base

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")
# The first install downloads every dependency; a loaded machine with a cold cache is slow.
INSTALL_AND_START = 480.0

pytestmark = pytest.mark.skipif(
    not DEBIAN_PYTHON.exists(), reason="needs the distribution's own Python at /usr/bin/python3"
)


def readme_run_command(readme: str) -> str:
    """The first command of the README's "Run it" section."""
    section = readme.split("\n## Run it\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))


def fresh_clone(folder: Path) -> Path:
    """A clone of this checkout's HEAD: only what is committed, nothing installed."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    clone = folder / "syncorders"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head.stdout.strip()], check=True)
    return clone


def newcomer_env(data_dir: Path) -> dict[str, str]:
    """This machine's environment (pip's configuration among it) with Debian's Python alone
    on PATH, free ports and a data folder of the test's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNCORDERS_", "PYENV", "PYTHON")) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = "/usr/bin:/bin"
    env["SYNCORDERS_DATA_DIR"] = str(data_dir)
    env["SYNCORDERS_PASSWORD_HASH_MEMORY"] = "1024"
    env["SYNCORDERS_PASSWORD_HASH_TIME"] = "1"
    env.update({f"SYNCORDERS_{service.upper()}_PORT": "0" for service in SERVICES})
    base = postgres_base()
    if base:
        # The PostgreSQL run proves the driver is part of the install too.
        for service, url in make_postgres_databases(base, INTERNAL_SERVICES).items():
            env[f"SYNCORDERS_{service.upper()}_DATABASE"] = url
    return env


class Output:
    """Reads a process's output in the background, so waiting for a line has a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, process: subprocess.Popen[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if process.poll() is not None:
                self.thread.join(timeout=5)
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout:.0f} s:\n{self.text()}")


def test_readme_run_command_on_a_fresh_clone_with_debians_python(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path)
    command = readme_run_command((clone / "README.md").read_text(encoding="utf-8"))
    env = newcomer_env(tmp_path / "data")
    started = time.monotonic()
    # A session of its own, so Ctrl-C can reach the whole foreground group as a terminal's does.
    run = subprocess.Popen(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(run)
    try:
        gateway_url = output.wait_for(r"the gateway is at (http://\S+)", run, INSTALL_AND_START).group(1)
        print(f"{command!r} installed and started the stack in {time.monotonic() - started:.1f} s")
        venv_python = (clone / ".venv" / "bin" / "python").resolve()
        assert venv_python.is_relative_to("/usr"), f"the environment was made with {venv_python}"

        gateway = Gateway(gateway_url)
        customer = gateway.customer(deposit=10_000)
        ordered = gateway.order(customer, price=2_500, quantity=2)
        assert ordered.status_code == 201, ordered.text
        assert ordered.json()["order"]["status"] == "paid"
        assert gateway.request("GET", "/wallet", customer.token).json()["balance"] == 5_000

        # Later commands run in the same environment.
        demo = subprocess.run(
            [str(clone / ".venv" / "bin" / "syncorders"), "demo", "--gateway", gateway_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "The scenario went as designed." in demo.stdout

        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=60) == 0, output.text()
        output.thread.join(timeout=5)
        assert "stopping all services" in output.text()
        assert _group_gone(run.pid, timeout=10), "a service outlived Ctrl-C"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=10)

    # Run again: the environment is kept as it is...
    again = subprocess.run(["./run", "--help"], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "usage: syncorders run" in again.stdout, again.stdout + again.stderr
    assert "./run: " not in again.stdout + again.stderr
    # ...until setup.py changes, when syncorders is installed again.
    with (clone / "setup.py").open("a", encoding="utf-8") as setup:
        setup.write("# changed\n")
    changed = subprocess.run(["./run", "--help"], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "./run: installing syncorders" in changed.stdout
    assert "./run: making a virtual environment" not in changed.stdout


def _group_gone(group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
