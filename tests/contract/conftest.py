"""Fixtures of the contract suite: the real services as processes (provider side), and
one WireMock JVM standing in for them (consumer side): a real app's ``settings`` point
it at the stand-ins, and ``keys`` sign its clients' access tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.tools.supervisor import Stack
from services.common.config import Settings
from tests.contract.consumers import ClientKeys, consumer_settings
from tests.contract.providers import Provider
from tests.contract.stubs import WireMock, start_wiremock
from tests.harness import drop_test_databases, start_stack

__all__ = ["drop_test_databases"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Fuzzed logins would all meet the throttle's 429 and leave the login logic untested.
    running = start_stack(tmp_path_factory.mktemp("contract-stack"), login_max_failures=1_000_000)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def provider(stack: Stack) -> Provider:
    return Provider(stack)


@pytest.fixture(scope="session")
def wiremock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireMock]:
    server = start_wiremock(tmp_path_factory.mktemp("wiremock"))
    yield server
    server.stop()


@pytest.fixture
def wiremock(wiremock_server: WireMock) -> WireMock:
    """The shared server with no stubs and an empty request journal."""
    wiremock_server.reset()
    return wiremock_server


@pytest.fixture
def settings(tmp_path: Path, wiremock: WireMock) -> Settings:
    return consumer_settings(tmp_path, wiremock)


@pytest.fixture
def keys(wiremock: WireMock) -> ClientKeys:
    keys = ClientKeys()
    keys.publish(wiremock)
    return keys
