"""Fixtures shared by every layer of tests. Nothing here imports what only the
end-to-end tier needs (processes, an SMTP server, a database driver)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from services.common.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fresh data folder, hence fresh SQLite files, for every test."""
    return Settings(data_dir=str(tmp_path), service_secret=secrets.token_hex(32), password_hash_cost=12)
