"""Opening the state store: one engine per URL per process, tuned for its backend, every wait bounded.

SQLite is the embedded default, so it gets what makes several processes safe on one file: WAL (readers
never block the writer), a busy timeout (writers queue instead of failing), and ``BEGIN IMMEDIATE``
(a transaction takes the write lock when it starts, so a read-check-write can never be overtaken
between its read and its write). PostgreSQL needs none of that; row locks do the same job there.

Every wait on the store is bounded (:class:`StoreBounds`, from ``[wfe] store_*_timeout``): opening a
connection (PostgreSQL ``connect_timeout``, the pool's checkout), one statement (``statement_timeout``)
and a lock (``lock_timeout``; SQLite's busy timeout, retries included). A wait that runs out becomes
one :class:`~airflow_wfe.exceptions.StoreUnavailableError` naming the bound (:func:`unavailable`), is
logged once with the store's masked URL and counted through the callback the harness registers; for
:data:`DOWN_FOR_S` seconds after it, new connections to that store (and SQLite write transactions)
fail at once, so a sick store costs a process one bound, not one per hook (docs/reliability.md).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from airflow_wfe.exceptions import ConfigError, StoreUnavailableError
from airflow_wfe.store.server_settings import ServerConnector

__all__ = [
    "DOWN_FOR_S",
    "READ_ONLY",
    "SQLITE_PRAGMAS",
    "StoreBounds",
    "begin_write",
    "bounds",
    "clear_down",
    "configure_bounds",
    "dispose_engines",
    "get_engine",
    "masked_url",
    "parse_url",
    "raise_if_down",
    "unavailable",
]

log = logging.getLogger("airflow_wfe.store")

#: Execution option that marks a connection as a reader (SQLite then skips the write lock).
READ_ONLY = "wfe_read_only"
#: After a wait on a store ran out, how long new connections to it fail at once (seconds).
DOWN_FOR_S: Final = 5.0
#: PostgreSQL SQLSTATEs of a bound that ran out: statement_timeout, lock_timeout.
_SQLSTATE_BOUND: Final = {"57014": "statement", "55P03": "lock"}
#: WAL frames after which a commit checkpoints the WAL into the database file (SQLite's default is
#: 1,000). A one-event audit append writes ~6 frames, so the default made every ~170th commit copy
#: pages back and ``fsync`` the database file, on the writer's path: ~75 µs wall per event with
#: 1,000 against ~40 µs with 10,000 in the same minutes (docs/performance.md). Checkpoints stay
#: SQLite's own PASSIVE ones, run by whichever writer's commit crosses the mark, so nothing changes
#: for readers (a reader sees its snapshot whether its pages are in the WAL or the file) or for
#: many processes (every connection of every process gets the same setting here).
SQLITE_WAL_AUTOCHECKPOINT: Final = 10_000
#: Bytes the WAL file is truncated back to after a checkpoint resets it: 10,000 frames of a
#: 4 KiB page are ~41 MB, so the WAL normally stays that size and is reused; a larger one (a
#: huge transaction, or a reader's snapshot that held the checkpoint back) shrinks back to this.
SQLITE_JOURNAL_SIZE_LIMIT: Final = 48 * 1024 * 1024
#: What every SQLite connection of the store is opened with (and the bench's raw anchor too).
SQLITE_PRAGMAS: Final = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    f"wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}",
    f"journal_size_limit={SQLITE_JOURNAL_SIZE_LIMIT}",
)


@dataclass(frozen=True)
class StoreBounds:
    """How long any wait on the store may last, in seconds (``[wfe] store_*_timeout``).

    Attributes:
        connect: opening a connection (PostgreSQL ``connect_timeout``, at least 2 s there), and
            waiting for one from the pool.
        statement: one statement (PostgreSQL ``statement_timeout``).
        lock: waiting for another writer's lock, retries included (PostgreSQL ``lock_timeout``,
            SQLite ``busy_timeout``).
    """

    connect: float = 3.0
    statement: float = 5.0
    lock: float = 3.0

    def option(self, bound: str) -> str:
        """``[wfe] store_<bound>_timeout = N s``, for messages."""
        return f"[wfe] store_{bound}_timeout = {getattr(self, bound):g} s"


_bounds = StoreBounds()
#: Called with the bound's name each time a wait runs out (the harness counts it as a metric).
_on_timeout: list[Callable[[str], None]] = []
#: URL -> monotonic time until which new connections fail at once.
_down_until: dict[str, float] = {}


def configure_bounds(
    new: StoreBounds, on_timeout: Callable[[str], None] | None = None
) -> StoreBounds:
    """Set the bounds of engines created from now on (the harness does, from ``[wfe]``), and
    the callback told of each wait that runs out; returns the previous bounds."""
    global _bounds  # process-wide, like the engines themselves
    previous, _bounds = _bounds, new
    _on_timeout[:] = [on_timeout] if on_timeout is not None else []
    return previous


def bounds() -> StoreBounds:
    """The bounds engines are created with."""
    return _bounds


def _classify(exc: BaseException) -> str | None:
    """Which bound a driver error says ran out, if any."""
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None)
    if state in _SQLSTATE_BOUND:
        return _SQLSTATE_BOUND[state]
    text = str(orig).lower()
    if "timeout expired" in text or "timed out" in text or "queuepool limit" in text:
        return "connect"
    if "database is locked" in text:
        return "lock"
    return None


def unavailable(url: str | URL, exc: BaseException, bound: str | None = None) -> Exception:
    """The :class:`StoreUnavailableError` for a driver error, and the one report of a wait that
    ran out: logged once (store and bound named), counted, and the store marked down for
    :data:`DOWN_FOR_S` seconds so the next callers do not wait again."""
    masked = masked_url(url)
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    bound = bound or _classify(exc)
    if bound is None:
        return StoreUnavailableError(masked, first)
    _down_until[_key(url)] = time.monotonic() + DOWN_FOR_S
    problem = f"no answer within {_bounds.option(bound)} ({first})"
    log.warning(
        "wfe state store %s: %s; for the next %g s new connections to it fail at once",
        masked,
        problem,
        DOWN_FOR_S,
    )
    for callback in _on_timeout:
        try:
            callback(bound)
        except Exception:
            log.debug("wfe timeout callback failed", exc_info=True)
    return StoreUnavailableError(masked, problem, bound=bound)


def _key(url: str | URL) -> str:
    parsed = url if isinstance(url, URL) else parse_url(url)
    return parsed.render_as_string(hide_password=False)


def clear_down() -> None:
    """Forget which stores timed out (an operator's explicit ``wfe spool flush`` tries at once)."""
    _down_until.clear()


def raise_if_down(url: str | URL) -> None:
    """Fail at once while the store is marked down by a wait that ran out (no second wait).

    Raises:
        StoreUnavailableError: the store timed out less than :data:`DOWN_FOR_S` seconds ago.
    """
    if not _down_until:
        return  # the common case, on every write: one emptiness check
    key = _key(url)
    until = _down_until.get(key)
    if until is None:
        return
    left = until - time.monotonic()
    if left <= 0:
        _down_until.pop(key, None)
        return
    raise StoreUnavailableError(
        masked_url(url), f"it did not answer moments ago; next try in {left:.1f} s"
    )


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
    lock_ms = int(_bounds.lock * 1000)
    engine = create_engine(
        url,
        connect_args={"timeout": _bounds.lock, "check_same_thread": False},
        pool_timeout=_bounds.connect,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see the begin hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={lock_ms}")
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection.in_transaction:
            return  # begin_write's own BEGIN IMMEDIATE, and SQLAlchemy joins it
        # Readers (marked by SqlStore) start a plain deferred transaction: in WAL mode they then
        # never wait for, nor block, a writer.
        readonly = connection.get_execution_options().get(READ_ONLY, False)
        _sqlite_begin(url, dbapi_connection, "BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _sqlite_begin(url: URL, dbapi_connection: Any, statement: str) -> None:
    """``statement`` (a SQLite ``BEGIN``) straight on the driver: through exec_driver_sql this one
    statement cost more than the audit append's (docs/performance.md). A writer fails at once while
    the store is marked down. Errors are wrapped as SQLAlchemy's would be, so "database is locked"
    is still an OperationalError the store retries."""
    if statement != "BEGIN":
        raise_if_down(url)  # a lock that just held a writer past its bound: do not wait again
    try:
        dbapi_connection.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def _driver_end(engine: Engine, dbapi_connection: Any, commit: bool) -> None:
    """Commit (or roll back) a transaction that only the driver saw (see :class:`begin_write`),
    errors wrapped as SQLAlchemy's would be (a locked SQLite store is still an OperationalError
    the store retries)."""
    statement = "COMMIT" if commit else "ROLLBACK"
    dbapi = engine.dialect.loaded_dbapi
    try:
        if commit:
            dbapi_connection.commit()
        else:
            dbapi_connection.rollback()
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, (), exc, dbapi.Error) from exc


def _server_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
        # libpq's own bounds: the connection (whole seconds, 2 at least), each statement and each
        # lock wait (server side), and unacknowledged data on the socket (a peer gone silent).
        statement_ms = int(_bounds.statement * 1000)
        lock_ms = int(_bounds.lock * 1000)
        settings = f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}"
        given = url.query.get("options")
        connect_args = {
            "connect_timeout": max(2, math.ceil(_bounds.connect)),
            "options": f"{given} {settings}" if isinstance(given, str) and given else settings,
            "tcp_user_timeout": int((_bounds.connect + _bounds.statement) * 1000),
        }
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        pool_timeout=_bounds.connect,
        connect_args=connect_args,
    )

    # Opens each connection: the startup options, or SET behind a pooler that refuses them; every
    # attempt fails at once while the store is marked down.
    connector = ServerConnector(
        masked_url(url),
        psycopg3=url.get_driver_name() == "psycopg",
        before=lambda: raise_if_down(url),
    )
    event.listen(engine, "do_connect", connector)
    return engine


_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
#: One idle write connection per engine, kept between transactions (see begin_write), and when it
#: was parked (monotonic seconds).
_IDLE: dict[Engine, tuple[Connection, float]] = {}
#: A server connection idle for longer goes back to the pool, and the next transaction takes one
#: through the pool's liveness check (a server restart or a dropped socket is then noticed there).
SERVER_IDLE_REUSE_S: Final = 5.0


class begin_write:
    """``with begin_write(engine) as connection:``: the same as ``engine.begin()`` (a transaction
    committed at the end, rolled back on an error), for the store's write transactions.

    The connection is not handed back to SQLAlchemy's pool after the transaction but kept idle for
    the next one: checking a connection out of the pool and back in cost as much as a one-event
    append's own statements on SQLite, and on PostgreSQL two round trips more (the pool's liveness
    ping, the reset's ROLLBACK) on top of the append's three (docs/performance.md). An idle
    connection holds no lock (its transaction is over). A server connection is reused only within
    :data:`SERVER_IDLE_REUSE_S`; after that it goes back to the pool and the next one is checked
    out as usual. A transaction takes the kept connection exclusively (a second writer at the same
    time, in another thread, gets one from the pool); after an error it is closed, not kept.

    The transaction is begun and ended on the driver (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL's
    drivers begin one with the first statement), and SQLAlchemy joins it when a statement first
    runs through it (SQLite's begin hook sees the open transaction; psycopg begins nothing of its
    own) and then commits it. A transaction whose statements all ran on the driver (the audit
    trail's one-event append) never pays for SQLAlchemy's transaction bookkeeping, which cost
    about as much as the append's own Python (docs/performance.md). Either way it is one
    transaction.
    """

    __slots__ = ("_connection", "_driver", "_engine", "_transaction")
    _transaction: RootTransaction | None

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Connection:
        engine = self._engine
        parked = _IDLE.pop(engine, None)
        connection = None
        sqlite = engine.dialect.name == "sqlite"
        if parked is not None:
            connection, since = parked
            if (
                connection.closed
                or connection.invalidated
                or (not sqlite and time.monotonic() - since > SERVER_IDLE_REUSE_S)
            ):
                connection.close()
                connection = None
        if connection is None:
            connection = engine.connect()
        self._connection = connection
        try:
            if connection.in_transaction():
                self._driver = None
                self._transaction = connection.begin()  # raises: not ours to nest in
            else:
                self._transaction = None
                self._driver = connection.connection.dbapi_connection
                if sqlite:
                    _sqlite_begin(engine.url, self._driver, "BEGIN IMMEDIATE")
        except BaseException:
            connection.close()
            raise
        return connection

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        connection = self._connection
        try:
            transaction = self._transaction
            if transaction is None:
                # Begun on the driver: SQLAlchemy's own transaction, if a statement made it join.
                transaction = connection.get_transaction()
            if transaction is not None:
                if error is None:
                    transaction.commit()
                else:
                    transaction.rollback()
            else:
                _driver_end(self._engine, self._driver, error is None)
        except BaseException:
            connection.close()
            raise
        if error is not None or connection.get_execution_options():
            connection.close()  # options set by the transaction are not for the next one
            return
        parked = _IDLE.setdefault(self._engine, (connection, time.monotonic()))
        if parked[0] is not connection:
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
                idle[0].close()
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _down_until.clear()


def _dispose_after_fork() -> None:
    # A forked child (LocalExecutor task, Celery prefork) must not reuse the parent's sockets or
    # SQLite handles; dispose(close=False) drops them without closing the parent's copies.
    _IDLE.clear()
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_after_fork)
