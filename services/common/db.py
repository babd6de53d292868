"""Databases: an embedded SQLite file by default, PostgreSQL when given its URL.

Each service reaches its database through one :class:`Store` of its own, which holds
the database and every statement the service runs on it; the models are table
declarations bound to no database. Connections are pooled (per thread for SQLite) and
opened and returned around each request by :class:`DatabaseMiddleware`; a pooled
PostgreSQL connection the server has closed is replaced before use. A database that
cannot be reached is a ``503 database_unavailable``, one that is busy with another
transaction's locks a ``503 database_busy`` (:func:`on_database_error`); health and
metrics never touch it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlparse

import falcon
import peewee
from playhouse.db_url import parse as parse_url
from playhouse.pool import PooledPostgresqlDatabase

# Re-exported: the services' logic takes its times from here with its database.
from contracts.operations import Page
from services.common.clock import iso, parse_iso, utcnow
from services.common.config import Settings
from services.common.errors import DEFAULT_RETRY_AFTER, ApiError, on_unexpected

__all__ = ["Page", "iso", "parse_iso", "utcnow"]

M = TypeVar("M", bound=peewee.Model)
log = logging.getLogger(__name__)

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
        return PooledPostgres(**parse_url(url), max_connections=max_connections, stale_timeout=600, autoconnect=False)
    raise SystemExit(f"configuration: unsupported database URL scheme {scheme!r}")


class PooledPostgres(PooledPostgresqlDatabase):
    """PostgreSQL's pool, checking each connection it hands out without a round trip.

    When the server stops or restarts it sends every session a termination notice and
    closes the socket, so an idle pooled connection it has closed is readable: polling
    the socket with no wait tells it apart from a live one, which has nothing to say
    until it is asked. Such a connection, or one the driver already knows is lost, is
    dropped at checkout and the next one (or a new one) is used, so the first requests
    after a restart do not fail. (peewee's own check sends ``SELECT 1`` on every
    checkout.)"""

    def _is_closed(self, conn: Any) -> bool:
        if conn.closed:
            return True
        adapter = self._adapter
        status = adapter.txn_status(conn)
        if status == adapter.txn_unknown or _readable(conn):
            return True
        if status != adapter.txn_idle:
            try:
                adapter.rollback(conn)
            except Exception:
                return True
        return False

    def _can_reuse(self, conn: Any) -> bool:
        return not conn.closed and bool(super()._can_reuse(conn))


def _readable(conn: Any) -> bool:
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


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


# How long a starting service waits for its database to answer, seconds.
SCHEMA_WAIT = 30.0


def create_schema(db: peewee.Database, models: Sequence[type[peewee.Model]], retired: Sequence[str] = ()) -> None:
    """Create missing tables and indexes, and drop the ``retired`` indexes that newer
    ones replace (a database an earlier version made gains the new ones here; on a
    large table that takes a while). Replicas starting together may race on
    PostgreSQL's catalog (a clash reads as a unique violation or "already exists"), and
    a database may come up after its service: both are retried, for a bounded time. The
    models are bound to ``db`` for this alone, and unbound again."""
    deadline = time.monotonic() + SCHEMA_WAIT
    attempt = 0
    with db.bind_ctx(models, bind_refs=False, bind_backrefs=False):
        while True:
            try:
                with db.connection_context():
                    db.create_tables(models, safe=True)
                    add_new_columns(db, models)
                    for index in retired:
                        db.execute_sql(f'DROP INDEX IF EXISTS "{index}"')
                return
            except (peewee.IntegrityError, peewee.ProgrammingError, peewee.OperationalError) as exc:
                attempt += 1
                if time.monotonic() >= deadline:
                    raise
                log.warning("creating the schema, attempt %d: %s: %s", attempt, type(exc).__name__, exc)
                time.sleep(min(0.2 * attempt, 2.0))


def add_new_columns(db: peewee.Database, models: Sequence[type[peewee.Model]]) -> None:
    """Add the nullable columns a model gained since its table was made, so a database
    an earlier version made keeps working. A new column that needs a value is a
    migration to write, and the service refuses to start without it."""
    from playhouse.migrate import SchemaMigrator, migrate

    migrator = SchemaMigrator.from_database(db)
    for model in models:
        table = model._meta.table_name
        present = {column.name for column in db.get_columns(table)}
        missing = [field for field in model._meta.sorted_fields if field.column_name not in present]
        if any(not field.null for field in missing):
            names = ", ".join(field.column_name for field in missing if not field.null)
            raise SystemExit(f"database: table {table!r} lacks the required columns {names}; migrate it first")
        if missing:
            migrate(*(migrator.add_column(table, field.column_name, field) for field in missing))


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


def columns(model: type[peewee.Model]) -> str:
    """Every column of ``model``, named with its table, in the order :func:`load` reads."""
    return ", ".join(f'{_table(model)}."{field.column_name}"' for field in model._meta.sorted_fields)


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

    def instance(self, db: peewee.Database, row: peewee.Model) -> None:
        """Insert a model instance made in memory (a foreign key as its ID, unread)."""
        self.execute(db, *(row.__data__.get(name) for name in self.fields))


def select_statement(model: type[peewee.Model], where: str) -> Statement:
    """``SELECT`` of every column of ``model`` ``WHERE where``, for :func:`load`."""
    return Statement(f"SELECT {columns(model)} FROM {_table(model)} WHERE {where}")


def load(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from a row of :func:`select_statement`, each value converted
    as peewee converts it (SQLite hands back times as text)."""
    fields = model._meta.sorted_fields
    return model(**{field.name: field.python_value(value) for field, value in zip(fields, values, strict=True)})


def newest_first(query: peewee.ModelSelect, page: Page, owner: str | None = None) -> tuple[list[Any], str | None]:
    """The page of ``query``'s rows, newest first (by ``seq``), and the ``before`` of the
    next page (the last row's ID), None when no row follows. The item ``before`` names
    is looked up among ``owner``'s rows when given (a customer's cursor cannot be
    another customer's item); one not found gives an empty page. With an index on the
    listing's filter and ``seq``, a page costs the same at any depth."""
    model = query.model
    if page.before is not None:
        anchor = model.alias()
        named = anchor.id == page.before
        if owner is not None:
            named &= anchor.user_id == owner
        query = query.where(model.seq < anchor.select(anchor.seq).where(named))
    # One row more than asked says whether another page follows.
    rows = list(query.order_by(model.seq.desc()).limit(page.limit + 1).offset(page.offset))
    following = len(rows) > page.limit
    del rows[page.limit :]
    return rows, rows[-1].id if following else None


# Why a database error is answered with a 503, and the answer's code, title and description.
UNAVAILABLE = "unavailable"
BUSY = "busy"
ANSWERS = {
    UNAVAILABLE: (
        "database_unavailable",
        "Database unavailable",
        "The service cannot reach its database; try again shortly.",
    ),
    BUSY: ("database_busy", "Database busy", "Try again shortly."),
}

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# The file cannot be opened, read or written: SQLITE_PERM, SQLITE_READONLY,
# SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
_SQLITE_UNAVAILABLE = {3, 8, 10, 13, 14}
# PostgreSQL's SQLSTATE classes and codes: connection exceptions, insufficient
# resources (too many connections), the server shutting down or starting up.
_PG_UNAVAILABLE = ("08", "53", "57P")
# Serialization failures and deadlocks (class 40), a lock not available.
_PG_BUSY = ("40", "55P03")


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind peewee's wrapper."""
    return getattr(exc, "orig", None) or exc


def outage(db: peewee.Database, exc: BaseException) -> str | None:
    """:data:`UNAVAILABLE` when the database cannot be reached (not running, the
    connection refused or lost, its file unreadable), :data:`BUSY` when it is held by
    other transactions' locks, None for any other failure. Decided by the driver's
    exception type and codes and the connection's state, not by message text."""
    driver = _driver_error(exc)
    if is_sqlite(db):
        code = getattr(driver, "sqlite_errorcode", None)
        if not isinstance(driver, sqlite3.Error) or code is None:
            return None
        if code & 0xFF in _SQLITE_BUSY:
            return BUSY
        return UNAVAILABLE if code & 0xFF in _SQLITE_UNAVAILABLE else None
    sqlstate = getattr(driver, "pgcode", None) or getattr(driver, "sqlstate", None) or ""
    if sqlstate.startswith(_PG_BUSY):
        return BUSY
    conn = db._state.conn
    if conn is not None and getattr(conn, "closed", False):
        return UNAVAILABLE
    # An OperationalError without a SQLSTATE comes from the client library itself: the
    # server could not be reached or the connection broke. An InterfaceError is a
    # connection already closed.
    if _is_a(exc, driver, "InterfaceError"):
        return UNAVAILABLE
    if _is_a(exc, driver, "OperationalError") and (not sqlstate or sqlstate.startswith(_PG_UNAVAILABLE)):
        return UNAVAILABLE
    return None


def _is_a(exc: BaseException, driver: BaseException, kind: str) -> bool:
    """Whether the error is of the DB-API class ``kind``, wrapped by peewee or not."""
    return any(cls.__name__ == kind for cls in (*type(exc).__mro__, *type(driver).__mro__))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def on_database_error(
    db: peewee.Database, req: falcon.Request, resp: falcon.Response, exc: Exception, params: object
) -> None:
    """A database that cannot be reached, or whose locks outlasted the busy timeout, is
    a 503 to retry, logged as one line; anything else is an unexpected failure."""
    kind = outage(db, exc)
    if kind is None:
        on_unexpected(req, resp, exc, params)
        return
    driver = _driver_error(exc)
    log.warning("database %s on %s %s: %s: %s", kind, req.method, req.path, type(driver).__name__, _first_line(driver))
    if kind == UNAVAILABLE:
        # Not handed back to the pool: it may be the broken one.
        req.context.database_lost = True
    code, title, description = ANSWERS[kind]
    raise ApiError(503, code, title, description, headers={"Retry-After": DEFAULT_RETRY_AFTER})


def install_errors(app: falcon.App, db: peewee.Database) -> None:
    """Every error raised by peewee or by the database's driver goes through
    :func:`on_database_error`."""
    handler = functools.partial(on_database_error, db)
    kinds: list[type[Exception]] = [peewee.PeeweeException]
    if is_sqlite(db):
        kinds.append(sqlite3.Error)
    else:
        import psycopg2  # loaded already: the database uses it

        kinds.append(psycopg2.Error)
    for kind in kinds:
        app.add_error_handler(kind, handler)


# Routes that must answer while the database is down: liveness and metrics never need
# it, and readiness checks it on a connection of its own (:func:`check`).
WITHOUT_DATABASE = frozenset({"/health", "/ready", "/metrics"})


class DatabaseMiddleware:
    """A connection for each request that needs one. A SQLite connection stays with its
    waitress thread between requests (opening costs more than the request's statements,
    and an idle one holds no lock); a PostgreSQL one goes back to the pool, to be
    shared. A connection that failed as unreachable is closed, not pooled."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.keep_open = is_sqlite(db)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object, params: object) -> None:
        if resource is not None and req.uri_template not in WITHOUT_DATABASE:
            self.db.connect(reuse_if_open=True)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool) -> None:
        if self.db.is_closed():
            return
        if getattr(req.context, "database_lost", False):
            self.db.manual_close()
        elif not self.keep_open:
            self.db.close()


def check(db: peewee.Database) -> str:
    """Readiness: the database answers a trivial query, on a connection checked out for
    it. ``failed: unavailable: OperationalError`` (or ``busy``, or ``error``) when not."""
    try:
        with db.connection_context():
            db.execute_sql("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means not ready; the kind is reported
        return f"failed: {outage(db, exc) or 'error'}: {type(_driver_error(exc)).__name__}"


class Store:
    """A service's database and every statement the service runs on it.

    Each service has one (``services/<name>/store.py``), made by its app factory from
    the settings (:meth:`open`) or given to it. Its models are bound to no database:
    the store runs each query on its own, so two stores in one process (tests, tools)
    never reach each other's database. The transactions are the store's too."""

    service: ClassVar[str]
    models: ClassVar[Sequence[type[peewee.Model]]]
    # Indexes of earlier versions that the models' own replace.
    retired_indexes: ClassVar[Sequence[str]] = ()

    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    @classmethod
    def open(cls, settings: Settings, *, max_connections: int | None = None) -> Self:
        """The service's database as ``settings`` name it, its tables made or completed.
        The pool has room for each of the service's threads and a few more."""
        if max_connections is None:
            max_connections = settings.thread_count(cls.service) + 4
        db = open_database(settings.database(cls.service), max_connections=max_connections)
        create_schema(db, cls.models, cls.retired_indexes)
        return cls(db)

    def close(self) -> None:
        self.db.close_all()

    def connection(self) -> peewee._ConnectionContext:
        """A connection for work outside a request (a request has one already)."""
        return self.db.connection_context()

    def transaction(self) -> peewee._atomic:
        return self.db.atomic()

    def write_transaction(self) -> peewee._atomic:
        return write_transaction(self.db)

    def savepoint(self) -> contextlib.AbstractContextManager[Any]:
        return savepoint(self.db)

    def check(self) -> str:
        return check(self.db)

    def add(self, row: peewee.Model) -> None:
        """Insert a model instance made in memory; a unique key it clashes with raises
        ``peewee.IntegrityError``."""
        self.insert(type(row), **row.__data__).execute()

    def save(self, row: peewee.Model) -> None:
        """Write a row read earlier, with the values it holds now, back by its key."""
        model = type(row)
        self.update(model, **row.__data__).where(model._meta.primary_key == row._pk).execute()

    # The query builder's queries, run on this store's database.
    def select(self, model: type[M], *fields: Any) -> peewee.ModelSelect:
        return model.select(*fields).bind(self.db)

    def insert(self, model: type[peewee.Model], **values: Any) -> peewee.ModelInsert:
        return model.insert(**values).bind(self.db)

    def update(self, model: type[peewee.Model], **values: Any) -> peewee.ModelUpdate:
        return model.update(**values).bind(self.db)

    def delete(self, model: type[peewee.Model]) -> peewee.ModelDelete:
        return model.delete().bind(self.db)
