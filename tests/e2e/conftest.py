"""End-to-end fixtures: all six services as real waitress processes on free ports, with
a real SMTP server receiving the letters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.supervisor import Stack
from tests.harness import Gateway, Inbox, drop_test_databases, start_smtp, start_stack

__all__ = ["drop_test_databases"]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, Inbox]]:
    controller, inbox = start_smtp()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[int, Inbox]) -> Iterator[Stack]:
    port, _inbox = smtp
    running = start_stack(tmp_path_factory.mktemp("stack"), smtp_host="127.0.0.1", smtp_port=port)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def inbox(smtp: tuple[int, Inbox]) -> Inbox:
    return smtp[1]


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Gateway:
    return Gateway(stack.urls["gateway"])


def log_text(stack: Stack, service: str) -> str:
    path = Path(stack.settings.data_dir) / "logs" / f"{service}.log"
    return path.read_text() if path.exists() else ""
