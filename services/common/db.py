"""Databases: an embedded SQLite file by default, PostgreSQL when given its URL.

Connections are pooled (per thread for SQLite) and opened and returned around each
request by :class:`DatabaseMiddleware`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

import falcon
import peewee
from playhouse.db_url import connect as connect_url

# Re-exported: the services' logic takes its times from here with its database.
from services.common.clock import iso, parse_iso, utcnow
from services.common.errors import ApiError, on_unexpected

__all__ = ["iso", "parse_iso", "utcnow"]

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    # WAL with NORMAL is durable against process crashes; only an OS crash may lose
    # the last transactions, never corrupt the file.
    "synchronous": "normal",
    "busy_timeout": 5000,
    "foreign_keys": 1,
}


def open_database(url: str, max_connections: int) -> peewee.Database:
    scheme = urlparse(url).scheme
    if scheme.startswith("sqlite"):
        # sqlite:///relative/file.db or sqlite:////absolute/file.db
        path = url.split(":///", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from playhouse.pool import PooledSqliteDatabase

        return PooledSqliteDatabase(
            path,
            pragmas=SQLITE_PRAGMAS,
            max_connections=max_connections,
            stale_timeout=600,
            check_same_thread=False,
            autoconnect=False,
        )
    if scheme.startswith("postgres"):
        pooled = url.replace(scheme + "://", "postgresql+pool://", 1)
        return connect_url(pooled, max_connections=max_connections, stale_timeout=600, autoconnect=False)
    raise SystemExit(f"configuration: unsupported database URL scheme {scheme!r}")


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


def write_transaction(db: peewee.Database) -> peewee._atomic:
    """A transaction that takes the write lock first on SQLite (``BEGIN IMMEDIATE``), so
    a read-then-write cannot be overtaken; on PostgreSQL row locks do that job."""
    if is_sqlite(db):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def create_schema(db: peewee.Database, models: Sequence[type[peewee.Model]]) -> None:
    """Create missing tables and indexes; replicas starting together may race on
    PostgreSQL's catalog, so a clash is retried."""
    db.bind(models, bind_refs=False, bind_backrefs=False)
    for attempt in range(5):
        try:
            with db.connection_context():
                db.create_tables(models, safe=True)
            return
        except peewee.IntegrityError:
            time.sleep(0.2 * (attempt + 1))
    with db.connection_context():
        db.create_tables(models, safe=True)


def on_database_error(req: falcon.Request, resp: falcon.Response, exc: Exception, params: object) -> None:
    """Lock contention that outlasted the busy timeout is a 503 to retry, not a 500."""
    if "locked" in str(exc) or "busy" in str(exc):
        raise ApiError(503, "database_busy", "Database busy", "Try again shortly.", headers={"Retry-After": "1"})
    on_unexpected(req, resp, exc, params)


class DatabaseMiddleware:
    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.db.connect(reuse_if_open=True)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool) -> None:
        if not self.db.is_closed():
            self.db.close()


@contextlib.contextmanager
def connected(db: peewee.Database) -> Iterator[None]:
    """For code outside a request (commands, checks)."""
    with db.connection_context():
        yield


def check(db: peewee.Database) -> str:
    """Readiness: the database answers a trivial query."""
    try:
        with db.connection_context():
            db.execute_sql("SELECT 1")
        return "ok"
    except peewee.PeeweeException as exc:
        return f"failed: {type(exc).__name__}"
