"""Fixtures shared by every layer of tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.config import Settings
from tests.harness import CREATED_DATABASES, drop_postgres_databases, postgres_base
from tests.postgres import INITDB_PATTERN, PrivateServer, binaries, start_private_server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fresh data folder, hence fresh SQLite files, for every test."""
    return Settings(
        data_dir=str(tmp_path), service_secret=secrets.token_hex(32), password_hash_memory=1024, password_hash_time=1
    )


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """PostgreSQL databases made for this run's stacks go when the run ends."""
    yield
    base = postgres_base()
    if base and CREATED_DATABASES:
        drop_postgres_databases(base)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivateServer]:
    """A PostgreSQL server of the module's own, to stop and start (never the shared one)."""
    if binaries() is None:
        pytest.skip(f"PostgreSQL's server binaries are not installed ({INITDB_PATTERN})")
    server = start_private_server()
    yield server
    server.destroy()
