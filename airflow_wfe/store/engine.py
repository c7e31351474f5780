"""Opening the state store: one engine per URL per process, tuned for its backend.

SQLite is the embedded default, so it gets what makes several processes safe on one file: WAL (readers
never block the writer), a busy timeout (writers queue instead of failing), and ``BEGIN IMMEDIATE``
(a transaction takes the write lock when it starts, so a read-check-write can never be overtaken
between its read and its write). PostgreSQL needs none of that; row locks do the same job there.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from airflow_wfe.exceptions import ConfigError, StoreUnavailableError

__all__ = [
    "READ_ONLY",
    "SQLITE_BUSY_TIMEOUT_MS",
    "begin_write",
    "dispose_engines",
    "get_engine",
    "masked_url",
    "parse_url",
]

#: Execution option that marks a connection as a reader (SQLite then skips the write lock).
READ_ONLY = "wfe_read_only"
#: How long a SQLite writer waits for the lock before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def parse_url(url: str) -> URL:
    """Parse a store URL, or explain which option holds a bad one."""
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError("store_conn", "(unparsable URL)", str(exc)) from None


def masked_url(url: str | URL) -> str:
    """The URL with its password hidden, fit for messages and logs."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    return parsed.render_as_string(hide_password=True)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StoreUnavailableError(masked_url(url), f"folder {folder} does not exist")
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see the begin hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (marked by SqlStore) start a plain deferred transaction: in WAL mode they then
        # never wait for, nor block, a writer.
        readonly = connection.get_execution_options().get(READ_ONLY, False)
        statement = "BEGIN" if readonly else "BEGIN IMMEDIATE"
        # Straight on the driver: through exec_driver_sql this one statement cost more than the
        # audit append's three (docs/performance.md). Its errors are wrapped as SQLAlchemy's would
        # be, so "database is locked" is still an OperationalError the store retries.
        try:
            connection.connection.dbapi_connection.execute(statement)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc

    return engine


def _server_engine(url: URL) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
#: One idle write connection per SQLite engine, kept between transactions (see begin_write).
_IDLE: dict[Engine, Connection] = {}


class begin_write:
    """``with begin_write(engine) as connection:``: the same as ``engine.begin()`` (a transaction
    committed at the end, rolled back on an error), for the store's write transactions.

    On SQLite the connection is not handed back to the pool after the transaction but kept idle for
    the next one: checking a connection out of SQLAlchemy's pool and back in cost as much as a
    one-event append's own statements (docs/performance.md). An idle SQLite connection holds no
    lock (its transaction is over). A transaction takes it exclusively (a second writer at the
    same time, in another thread, gets one from the pool); after an error it is closed, not kept.
    """

    __slots__ = ("_connection", "_engine", "_transaction")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Connection:
        engine = self._engine
        connection = _IDLE.pop(engine, None) if engine.dialect.name == "sqlite" else None
        if connection is None or connection.closed or connection.invalidated:
            connection = engine.connect()
        self._connection = connection
        try:
            self._transaction = connection.begin()
        except BaseException:
            connection.close()
            raise
        return connection

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        connection = self._connection
        try:
            if error is None:
                self._transaction.commit()
            else:
                self._transaction.rollback()
        except BaseException:
            connection.close()
            raise
        if (
            error is not None
            or self._engine.dialect.name != "sqlite"
            or connection.get_execution_options()  # set by the transaction: not for the next one
        ):
            connection.close()
        elif _IDLE.setdefault(self._engine, connection) is not connection:
            connection.close()  # another thread's connection is already kept


def get_engine(url: str) -> Engine:
    """The process's engine for ``url``, created on first use.

    Raises:
        ConfigError: the URL cannot be parsed.
        StoreUnavailableError: the SQLite file's folder is missing, or the driver is not installed.
    """
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            parsed = parse_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = _sqlite_engine(parsed)
            else:
                try:
                    engine = _server_engine(parsed)
                except ImportError as exc:
                    raise StoreUnavailableError(
                        masked_url(parsed), f"its database driver is not installed ({exc})"
                    ) from None
            _ENGINES[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every engine of this process (tests and short-lived CLIs call it)."""
    with _LOCK:
        for engine in list(_IDLE):
            idle = _IDLE.pop(engine, None)
            if idle is not None:
                idle.close()
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _dispose_after_fork() -> None:
    # A forked child (LocalExecutor task, Celery prefork) must not reuse the parent's sockets or
    # SQLite handles; dispose(close=False) drops them without closing the parent's copies.
    _IDLE.clear()
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_after_fork)
