"""A private PostgreSQL server for tests that stop and start their database.

The shared server a test run may point at (``SYNCORDERS_TEST_POSTGRES``) is never
stopped: other runs use it. A test that needs an outage makes its own server with the
installed PostgreSQL binaries, in a temporary folder, listening on 127.0.0.1 on a free
port with its socket inside that folder and trusting local connections. ``initdb``
refuses to run as root, so as root every server command runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs

INITDB_PATTERN = "/usr/lib/postgresql/*/bin/initdb"
SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The folder of the newest installed PostgreSQL's server binaries, or None."""
    found = sorted(glob.glob(INITDB_PATTERN), key=lambda path: int(Path(path).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class PrivateServer:
    """One PostgreSQL server of this test's own: ``stop`` and ``start`` it at will."""

    bin_dir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *command: str, timeout: float = 60) -> None:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", SERVER_USER, "--no-sync", "--no-locale")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            # A test's data need not survive the machine crashing.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_databases(self, names: Sequence[str]) -> dict[str, str]:
        """One empty database per name; their URLs by name."""
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for name in names:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return {name: self.url(name) for name in names}

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_private_server(attempts: int = 3) -> PrivateServer:
    """A new server, initialised and running. A free port may be taken between choosing
    it and binding it, so a failed start tries another."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError(f"no PostgreSQL server binaries ({INITDB_PATTERN})")
    root = Path(tempfile.mkdtemp(prefix="syncorders-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER, SERVER_USER)
    server = PrivateServer(bin_dir, root, _free_port())
    try:
        server.init()
        for attempt in range(attempts):
            try:
                server.start()
                return server
            except RuntimeError:
                if attempt + 1 == attempts:
                    raise
                server.port = _free_port()
    except BaseException:
        server.destroy()
        raise
    raise AssertionError("unreachable")
