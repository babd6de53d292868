"""Fixtures shared by every layer of tests. Nothing here imports what only the
end-to-end tier needs (processes, an SMTP server, WireMock)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.config import Settings
from tests.postgres import INITDB_PATTERN, PrivateServer, binaries, start_private_server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fresh data folder, hence fresh SQLite files, for every test."""
    return Settings(
        data_dir=str(tmp_path), service_secret=secrets.token_hex(32), password_hash_memory=1024, password_hash_time=1
    )


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivateServer]:
    """A PostgreSQL server of the module's own, to stop and start (never the shared one)."""
    if binaries() is None:
        pytest.skip(f"PostgreSQL's server binaries are not installed ({INITDB_PATTERN})")
    server = start_private_server()
    yield server
    server.destroy()
