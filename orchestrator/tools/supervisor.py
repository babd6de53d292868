"""Start, watch and stop the six services as separate waitress processes.

Used by ``syncorders run`` and by the end-to-end tests. Services start in dependency
order; each prints the address it bound, so port 0 (any free port) works and the
callers of a service are started knowing its real URL. Each runs in a process group of
its own, so a terminal's Ctrl-C reaches the supervisor alone, which stops each service
with one SIGTERM and gives it its drain's time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import attrs

from services.common.config import Settings

# Callees before callers.
START_ORDER = ("profiles", "billing", "orders", "notifications", "auth", "gateway")


class StartFailed(Exception):
    pass


@attrs.define
class Process:
    service: str
    popen: subprocess.Popen[bytes]
    url: str
    port: int


@attrs.define
class Stack:
    settings: Settings
    log_dir: Path | None = None
    # More environment for every service started (OTEL_* settings, say).
    extra_env: dict[str, str] = attrs.Factory(dict)
    processes: dict[str, Process] = attrs.Factory(dict)
    urls: dict[str, str] = attrs.Factory(dict)
    ports: dict[str, int] = attrs.Factory(dict)
    # The processes a stop under way is waiting for.
    _stopping: list[Process] = attrs.field(factory=list, init=False)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCORDERS_")}
        env.update(self.settings.to_env())
        for service, url in self.urls.items():
            env[f"SYNCORDERS_{service.upper()}_URL"] = url
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def start(self, services: tuple[str, ...] = START_ORDER, timeout: float = 60.0) -> Stack:
        for service in START_ORDER:
            if service in services:
                self.start_one(service, timeout=timeout)
        return self

    def start_one(
        self,
        service: str,
        timeout: float = 60.0,
        port: int | None = None,
        name: str | None = None,
        publish: bool = True,
    ) -> Process:
        """Start ``service``; ``name`` tells a replica apart, and ``publish=False`` leaves
        callers pointed where the settings say (at a load balancer, say)."""
        name = name or service
        chosen = port if port is not None else self.ports.get(name, self.settings.port(service))
        stderr: int | IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        popen = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.tools.cli", "serve", service, "--port", str(chosen)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=self.env(self.extra_env),
            process_group=0,
        )
        if stderr is not None and not isinstance(stderr, int):
            stderr.close()
        log_file = self.log_dir / f"{name}.log" if self.log_dir is not None else None
        url = _await_listening(popen, service, timeout, log_file)
        bound = int(url.rsplit(":", 1)[1])
        # Restarts keep the port, so callers' URLs stay right.
        self.ports[name] = bound
        if publish:
            self.urls[service] = url
        process = Process(service, popen, url, bound)
        self.processes[name] = process
        return process

    @property
    def stop_timeout(self) -> float:
        """How long a service may take to stop after SIGTERM: its drain, and a margin."""
        return self.settings.shutdown_delay + self.settings.shutdown_timeout + 5

    def kill(self, service: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` and wait for the exit; the exit code."""
        process = self.processes.pop(service)
        process.popen.send_signal(sig)
        return process.popen.wait(timeout=self.stop_timeout)

    def restart(self, service: str) -> Process:
        if service in self.processes:
            self.kill(service, signal.SIGTERM)
        return self.start_one(service)

    def crashed(self) -> list[tuple[str, int]]:
        return [(name, p.popen.returncode) for name, p in self.processes.items() if p.popen.poll() is not None]

    def stop(self) -> None:
        """SIGTERM to every service, then wait for each to drain (killed past the stop
        timeout)."""
        self._stopping = list(reversed(self.processes.values()))
        self.processes.clear()
        self._signal_running(self._stopping)
        self._wait(self._stopping, self.stop_timeout)

    def cut(self) -> None:
        """A second SIGTERM to the services still draining: each cuts what it has in
        flight and exits at once (a stop under way goes on waiting for them)."""
        self._signal_running(self._stopping)

    @staticmethod
    def _signal_running(processes: list[Process]) -> None:
        for process in processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)

    @staticmethod
    def _wait(processes: list[Process], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


def _await_listening(popen: subprocess.Popen[bytes], service: str, timeout: float, log_file: Path | None = None) -> str:
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    marker = f"syncorders {service} listening on "
    os.set_blocking(popen.stdout.fileno(), False)
    buffer = b""
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise StartFailed(f"{service} exited with code {popen.returncode} before listening{_last_lines(log_file)}")
        chunk = popen.stdout.read()
        if chunk:
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith(marker):
                    return line[len(marker) :].strip()
        time.sleep(0.02)
    popen.kill()
    raise StartFailed(f"{service} did not start listening within {timeout} s{_last_lines(log_file)}")


def _last_lines(log_file: Path | None, count: int = 15) -> str:
    """The end of a service's log, for a start that failed: why it failed, where the
    failure is reported (a supervisor's terminal, a CI log)."""
    if log_file is None or not log_file.exists():
        return ""
    lines = log_file.read_text(errors="replace").splitlines()[-count:]
    return "; its log ends:\n" + "\n".join(f"    {line}" for line in lines)
