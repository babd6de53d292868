"""Helpers for tests that run the real thing: the six services as waitress processes,
a real SMTP server, real SQLite files or real PostgreSQL databases."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests
from aiosmtpd.controller import Controller

from orchestrator.tools.supervisor import START_ORDER, Stack
from services.common.config import SERVICES, Settings

POSTGRES_ENV = "SYNCORDERS_TEST_POSTGRES"
# Which HTTP server the stacks run on: waitress unless the run asks for granian.
SERVER_ENV = "SYNCORDERS_TEST_SERVER"
# Debian's chromium, headless in CI: no sandbox (root), and nothing fetched on its own.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Inbox:
    """Collects what the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [message for rcpts, message in self.messages if address in rcpts]


class _BoundController(Controller):
    """aiosmtpd cannot bind port 0 itself: hand it a socket that is already bound."""

    def __init__(self, handler: Any, **options: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self.sock.getsockname()[1], **options)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


def start_smtp(**options: Any) -> tuple[Controller, Inbox]:
    """A plain SMTP server; ``options`` go to aiosmtpd's ``Controller`` (``ssl_context``
    for TLS from the start) and ``SMTP`` (``tls_context``, ``require_starttls``,
    ``authenticator``, ``auth_required``)."""
    inbox = Inbox()
    controller = _BoundController(inbox, **options)
    controller.start()
    return controller, inbox


def rss_mb(pid: int) -> float:
    """A process's resident memory, in MiB (what ``ps`` and the benchmark call MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for process {pid}")


def postgres_base() -> str | None:
    """The PostgreSQL server to make test databases on, when the run asks for it."""
    return os.environ.get(POSTGRES_ENV) or None


def make_postgres_databases(base: str, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """A fresh database per service; ``base`` is a URL to a database we may connect to."""
    import psycopg2

    tag = secrets.token_hex(4)
    dsn = base.replace("postgresql+pool://", "postgresql://")
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    urls = {}
    prefix, _, _rest = dsn.rpartition("/")
    with conn.cursor() as cur:
        for service in services:
            name = f"so_{tag}_{service}"
            cur.execute(f'CREATE DATABASE "{name}"')
            urls[service] = f"{prefix}/{name}"
            CREATED_DATABASES.append(name)
    conn.close()
    return urls


# Databases this test run made, dropped when the run ends (drop_test_databases).
CREATED_DATABASES: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def drop_test_databases() -> Iterator[None]:
    """PostgreSQL databases made for this run's stacks go when the run ends. A conftest
    that starts stacks imports this fixture."""
    yield
    base = postgres_base()
    if base and CREATED_DATABASES:
        drop_postgres_databases(base)


def drop_postgres_databases(base: str) -> None:
    import psycopg2

    conn = psycopg2.connect(base.replace("postgresql+pool://", "postgresql://"))
    conn.autocommit = True
    with conn.cursor() as cur:
        while CREATED_DATABASES:
            cur.execute(f'DROP DATABASE IF EXISTS "{CREATED_DATABASES.pop()}" WITH (FORCE)')
    conn.close()


def server_under_test() -> str:
    """The server the run asks the stacks to use (``SYNCORDERS_TEST_SERVER``)."""
    return os.environ.get(SERVER_ENV) or "waitress"


def stack_settings(data_dir: Path, **overrides: Any) -> Settings:
    databases = {}
    base = postgres_base()
    # A test that passes its own ``databases`` (``{}``: SQLite files) gets no others made.
    if base and "databases" not in overrides:
        databases = make_postgres_databases(base)
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "service_secret": secrets.token_hex(32),
        "ports": dict.fromkeys(SERVICES, 0),
        "databases": databases,
        "password_hash_memory": 1024,
        "password_hash_time": 1,
        "http_read_timeout": 5.0,
        "server": server_under_test(),
    }
    values.update(overrides)
    return Settings(**values)


def start_stack(
    data_dir: Path, services: tuple[str, ...] = START_ORDER, env: dict[str, str] | None = None, **overrides: Any
) -> Stack:
    """The stack on fresh databases; ``env`` is more environment for its processes."""
    stack = Stack(stack_settings(data_dir, **overrides), log_dir=data_dir / "logs", extra_env=dict(env or {}))
    try:
        stack.start(services)
    except Exception:
        stack.stop()
        raise
    return stack


@attrs.define
class Customer:
    login: str
    password: str
    email: str
    user_id: str
    token: str


class Gateway:
    """A client of the public API, as a user's program would be."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def register(self, login: str | None = None, **fields: Any) -> requests.Response:
        login = login or f"user-{uuid.uuid4().hex[:10]}"
        body = {
            "login": login,
            "password": "correct horse battery",
            "email": f"{login}@example.com",
            "first_name": "Test",
            "last_name": "Customer",
            **fields,
        }
        return self.request("POST", "/auth/register", json=body)

    def customer(self, deposit: int = 0) -> Customer:
        login = f"user-{uuid.uuid4().hex[:10]}"
        registered = self.register(login)
        assert registered.status_code == 201, registered.text
        token = self.request("POST", "/auth/login", json={"login": login, "password": "correct horse battery"})
        assert token.status_code == 200, token.text
        customer = Customer(
            login,
            "correct horse battery",
            f"{login}@example.com",
            registered.json()["id"],
            token.json()["access_token"],
        )
        if deposit:
            topped = self.request("POST", "/wallet/deposits", customer.token, json={"amount": deposit})
            assert topped.status_code == 201, topped.text
        return customer

    def order(self, customer: Customer, price: int, quantity: int = 1, key: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else {}
        body = {
            "user_id": customer.user_id,
            "currency": "RUB",
            "items": [{"name": "Tea", "quantity": quantity, "price": price}],
        }
        return self.request("POST", "/orders", customer.token, json=body, headers=headers)
