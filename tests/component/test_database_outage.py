"""A service whose database fails: unreachable is ``503 database_unavailable``, held by
another writer's lock ``503 database_busy``, each with ``Retry-After`` and one log line;
``/health`` and ``/metrics`` answer without the database, ``/ready`` names it; pooled
PostgreSQL connections that a restart broke are replaced before use.

Profiles' own app pieces (the shared service skeleton and its resource) run on a real
SQLite file or on a PostgreSQL server of this module's own, which the tests stop,
restart and cut connections of.
"""

from __future__ import annotations

import logging
import secrets
import select
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import falcon
import peewee
import psycopg2
import pytest

from contracts import profiles as wire
from contracts.operations import AUTH, Operation
from services.common import db as database
from services.common.config import Settings
from services.common.service import internal_app
from services.profiles.resources import ProfileResource
from services.profiles.store import ProfileStore
from tests.component.conftest import ServiceCaller
from tests.postgres import PrivateServer

DATA = {"email": "anna@example.com", "first_name": "Anna", "last_name": "K"}
LOST = Operation("GET", "/lost", "lost", "Loses its database session mid-request", callers=frozenset({AUTH}))


class LosesItsSession:
    """Has its own database session ended by the server, then goes on using it: a
    connection reset in the middle of a request."""

    def __init__(self, db: peewee.Database, admin_url: str) -> None:
        self.db = db
        self.admin_url = admin_url

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        pid = self.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        admin = psycopg2.connect(self.admin_url)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        finally:
            admin.close()
        # The server's termination notice arrives before the next statement is sent.
        select.select([self.db.connection().fileno()], [], [], 5)
        self.db.execute_sql("SELECT 1")


def profiles_app(settings: Settings, admin_url: str | None = None) -> tuple[falcon.App, peewee.Database]:
    """Profiles as its factory builds it, plus a route that loses its session."""
    operations = (*wire.OPERATIONS, LOST)
    store = ProfileStore.open(settings)
    app = internal_app("profiles", settings, store, operations)
    app.add_route("/profiles/{user_id:uuid}", ProfileResource(store))
    if admin_url is not None:
        app.add_route("/lost", LosesItsSession(store.db, admin_url))
    return app, store.db


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == database.__name__]


def assert_logged_once_each(caplog: pytest.LogCaptureFixture, kind: str, failures: int) -> None:
    """One line per failure, no traceback, and nothing logged as unexpected."""
    lines = outage_lines(caplog)
    assert len(lines) == failures, [r.getMessage() for r in lines]
    for record in lines:
        message = record.getMessage()
        assert message.startswith(f"database {kind} on ") and "\n" not in message
        assert record.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "nothing is an unexpected failure"


def assert_answered_503(result: Any, code: str) -> None:
    assert result.status_code == 503, result.text
    assert result.json["code"] == code and set(result.json) == {"code", "title", "description"}
    assert result.headers["Retry-After"] == "1"


def assert_probes_while_down(caller: ServiceCaller, db: peewee.Database) -> None:
    """Liveness and metrics answer and take no connection; readiness names the database."""
    pooled = (len(db._connections), len(db._in_use))
    assert caller("GET", "/health").status_code == 200
    metrics = caller("GET", "/metrics")
    assert metrics.status_code == 200 and "syncorders_http_requests_total" in metrics.text
    assert (len(db._connections), len(db._in_use)) == pooled
    ready = caller("GET", "/ready")
    assert ready.status_code == 503
    assert ready.json["checks"] == {"database": "failed: unavailable: OperationalError"}


@pytest.fixture
def postgres_settings(tmp_path: Path, private_postgres: PrivateServer) -> Settings:
    name = f"profiles_{secrets.token_hex(4)}"
    url = private_postgres.create_databases([name])[name]
    return Settings(data_dir=str(tmp_path), service_secret=secrets.token_hex(32), databases={"profiles": url})


def test_postgres_down_is_database_unavailable_while_health_and_metrics_answer(
    postgres_settings: Settings, private_postgres: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    app, db = profiles_app(postgres_settings)
    caller = ServiceCaller(app, postgres_settings, "profiles", "auth")
    user = str(uuid.uuid4())
    assert caller("PUT", f"/profiles/{user}", json=DATA).status_code == 201
    caplog.set_level(logging.WARNING)
    private_postgres.stop()
    try:
        assert_answered_503(caller("PUT", f"/profiles/{user}", json=DATA), "database_unavailable")
        reader = caller.calling_as("gateway")
        assert_answered_503(reader("GET", f"/profiles/{user}"), "database_unavailable")
        assert_logged_once_each(caplog, "unavailable", 2)
        assert_probes_while_down(caller, db)
    finally:
        private_postgres.start()
    assert caller("GET", "/ready").json == {"status": "ready", "service": "profiles", "checks": {"database": "ok"}}
    assert caller.calling_as("gateway")("GET", f"/profiles/{user}").json["email"] == DATA["email"]
    db.close_all()


def test_pooled_connections_a_restart_broke_are_replaced_before_use(
    postgres_settings: Settings, private_postgres: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    app, db = profiles_app(postgres_settings)
    caller = ServiceCaller(app, postgres_settings, "profiles", "auth")
    # Warm the pool: four connections checked out at once, then all returned.
    together = threading.Barrier(4)

    def hold() -> None:
        with db.connection_context():
            db.execute_sql("SELECT 1")
            together.wait(timeout=10)

    holders = [threading.Thread(target=hold) for _ in range(4)]
    for thread in holders:
        thread.start()
    for thread in holders:
        thread.join(timeout=15)
    pooled = [conn for _ts, _n, conn in db._connections]
    assert len(pooled) >= 4
    assert not any(db._is_closed(conn) for conn in pooled)

    private_postgres.stop()
    private_postgres.start()
    # The driver does not know yet; the socket says the server closed it.
    assert all(conn.closed == 0 for conn in pooled)
    assert all(db._is_closed(conn) for conn in pooled)

    caplog.set_level(logging.WARNING)
    answers: list[int] = []

    def put() -> None:
        for _ in range(3):
            answers.append(caller("PUT", f"/profiles/{uuid.uuid4()}", json=DATA).status_code)

    writers = [threading.Thread(target=put) for _ in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=30)
    assert answers == [201] * 12
    assert outage_lines(caplog) == []
    assert not any(conn in pooled for _ts, _n, conn in db._connections), "every broken connection was dropped"
    db.close_all()


def test_a_connection_lost_mid_request_is_database_unavailable_and_is_not_pooled(
    postgres_settings: Settings, private_postgres: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    app, db = profiles_app(postgres_settings, admin_url=private_postgres.url())
    caller = ServiceCaller(app, postgres_settings, "profiles", "auth")
    caplog.set_level(logging.WARNING)
    assert_answered_503(caller("GET", "/lost"), "database_unavailable")
    assert_logged_once_each(caplog, "unavailable", 1)
    assert not any(conn.closed for _ts, _n, conn in db._connections)
    assert caller("PUT", f"/profiles/{uuid.uuid4()}", json=DATA).status_code == 201
    db.close_all()


def test_a_sqlite_file_that_cannot_be_opened_is_database_unavailable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app, db = profiles_app(settings)
    caller = ServiceCaller(app, settings, "profiles", "auth")
    user = str(uuid.uuid4())
    assert caller("PUT", f"/profiles/{user}", json=DATA).status_code == 201
    # A thread with no connection yet meets a file it cannot open (a volume gone, say).
    db.close_all()
    path = Path(settings.database("profiles").split(":///", 1)[1])
    aside = path.parent / "aside"
    aside.mkdir()
    for file in path.parent.glob(path.name + "*"):
        shutil.move(file, aside / file.name)
    path.mkdir()
    caplog.set_level(logging.WARNING)
    try:
        assert_answered_503(caller("PUT", f"/profiles/{user}", json=DATA), "database_unavailable")
        assert_logged_once_each(caplog, "unavailable", 1)
        assert_probes_while_down(caller, db)
    finally:
        path.rmdir()
        for file in aside.iterdir():
            shutil.move(file, path.parent / file.name)
    assert caller("GET", "/ready").status_code == 200
    assert caller.calling_as("gateway")("GET", f"/profiles/{user}").json["email"] == DATA["email"]
    db.close_all()


def test_sqlite_lock_contention_stays_database_busy(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(database.SQLITE_PRAGMAS, "busy_timeout", 100)
    app, db = profiles_app(settings)
    caller = ServiceCaller(app, settings, "profiles", "auth")
    other = sqlite3.connect(settings.database("profiles").split(":///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.WARNING)
    try:
        assert_answered_503(caller("PUT", f"/profiles/{uuid.uuid4()}", json=DATA), "database_busy")
        assert_logged_once_each(caplog, "busy", 1)
        assert caller("GET", "/ready").status_code == 200, "a lock held elsewhere is not an outage"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert caller("PUT", f"/profiles/{uuid.uuid4()}", json=DATA).status_code == 201
    db.close_all()
