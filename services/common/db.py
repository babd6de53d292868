"""Databases: an embedded SQLite file by default, PostgreSQL when given its URL.

Connections are pooled (per thread for SQLite) and opened and returned around each
request by :class:`DatabaseMiddleware`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import falcon
import peewee
from playhouse.db_url import connect as connect_url

# Re-exported: the services' logic takes its times from here with its database.
from services.common.clock import iso, parse_iso, utcnow
from services.common.errors import ApiError, on_unexpected

__all__ = ["iso", "parse_iso", "utcnow"]

M = TypeVar("M", bound=peewee.Model)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    # WAL with NORMAL is durable against process crashes; only an OS crash may lose
    # the last transactions, never corrupt the file.
    "synchronous": "normal",
    "busy_timeout": 5000,
    "foreign_keys": 1,
    # 64 KiB of page cache per connection, not SQLite's 2 MB: each waitress thread keeps
    # its connection, so 2 MB each grew a service by 30 MB once its lists were read. In
    # WAL mode any other connection's commit empties a connection's cache anyway, and
    # the OS keeps the file's pages.
    "cache_size": -64,
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


def savepoint(db: peewee.Database) -> contextlib.AbstractContextManager[Any]:
    """Room for one statement to fail inside a transaction. PostgreSQL aborts the whole
    transaction on an error unless a savepoint holds it; SQLite undoes only the failed
    statement, so it needs none."""
    return contextlib.nullcontext() if is_sqlite(db) else db.atomic()


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


class Statement:
    """One statement kept as SQL text, for the few that every order runs.

    Peewee builds a query's SQL from its expression tree on every call, and on the order
    flow that took over half of each handler's time; these statements are written once
    instead. ``?`` marks a parameter and becomes the driver's own placeholder. Names are
    double-quoted, which SQLite and PostgreSQL both read as identifiers. The rarer paths
    keep peewee's query builder."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._by_placeholder: dict[str, str] = {}

    def execute(self, db: peewee.Database, *params: Any) -> Any:
        """Run it; the driver's cursor comes back (``rowcount``, ``fetchone``)."""
        text = self._by_placeholder.get(db.param)
        if text is None:
            text = self._by_placeholder[db.param] = self.sql.replace("?", db.param)
        return db.execute_sql(text, params)

    def first(self, db: peewee.Database, *params: Any) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.execute(db, *params).fetchone()
        return row

    def scalar(self, db: peewee.Database, *params: Any) -> Any:
        """The first column of the first row, or None."""
        row = self.first(db, *params)
        return None if row is None else row[0]


def _table(model: type[peewee.Model]) -> str:
    return f'"{model._meta.table_name}"'


class Insert(Statement):
    """``INSERT`` of a fixed set of a model's fields, their values given by name."""

    def __init__(self, model: type[peewee.Model], *fields: str) -> None:
        columns = ", ".join(f'"{model._meta.fields[name].column_name}"' for name in fields)
        super().__init__(f"INSERT INTO {_table(model)} ({columns}) VALUES ({', '.join('?' * len(fields))})")
        self.fields = fields

    def row(self, db: peewee.Database, **values: Any) -> None:
        if values.keys() != set(self.fields):
            raise TypeError(f"insert needs exactly {', '.join(self.fields)}")
        self.execute(db, *(values[name] for name in self.fields))


def select_statement(model: type[peewee.Model], where: str) -> Statement:
    """``SELECT`` of every column of ``model`` ``WHERE where``, for :func:`load`."""
    columns = ", ".join(f'"{field.column_name}"' for field in model._meta.sorted_fields)
    return Statement(f"SELECT {columns} FROM {_table(model)} WHERE {where}")


def load(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from a row of :func:`select_statement`, each value converted
    as peewee converts it (SQLite hands back times as text)."""
    fields = model._meta.sorted_fields
    return model(**{field.name: field.python_value(value) for field, value in zip(fields, values, strict=True)})


def on_database_error(req: falcon.Request, resp: falcon.Response, exc: Exception, params: object) -> None:
    """Lock contention that outlasted the busy timeout is a 503 to retry, not a 500."""
    if "locked" in str(exc) or "busy" in str(exc):
        raise ApiError(503, "database_busy", "Database busy", "Try again shortly.", headers={"Retry-After": "1"})
    on_unexpected(req, resp, exc, params)


class DatabaseMiddleware:
    """A connection for each request. A SQLite connection stays with its waitress thread
    between requests (opening costs more than the request's statements, and an idle
    one holds no lock); a PostgreSQL one goes back to the pool, to be shared."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.keep_open = is_sqlite(db)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.db.connect(reuse_if_open=True)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool) -> None:
        if not self.keep_open and not self.db.is_closed():
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
