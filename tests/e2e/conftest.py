"""End-to-end fixtures: all six services as real waitress processes on free ports, with
a real SMTP server receiving the letters.

A module that needs its stack started otherwise overrides ``stack_options`` alone (it
may build on ``smtp_options``); ``stack`` and ``gateway`` then serve its own stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.tools.supervisor import Stack
from tests.harness import Gateway, Inbox, drop_test_databases, start_smtp, start_stack

__all__ = ["drop_test_databases"]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, Inbox]]:
    controller, inbox = start_smtp()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture(scope="module")
def smtp_options(smtp: tuple[int, Inbox]) -> dict[str, Any]:
    """Letters delivered to the module's SMTP server."""
    port, _inbox = smtp
    return {"smtp_host": "127.0.0.1", "smtp_port": port}


@pytest.fixture(scope="module")
def stack_options(smtp_options: dict[str, Any]) -> dict[str, Any]:
    """How the module's stack is started: ``start_stack``'s keywords."""
    return smtp_options


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_options: dict[str, Any]) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"), **stack_options)
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
