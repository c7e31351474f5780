"""Schema revisions of the state store, and the migrations that move between them.

Checking the revision is one cheap query and imports nothing heavy, because every task process does it
once. Alembic is imported only to actually migrate: by ``wfe db upgrade``, or on first use of an empty
store (a fresh install should just work). A store at an *older* revision is never migrated implicitly:
with many workers sharing one database, who migrates and when is the operator's decision.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from airflow_wfe.exceptions import SchemaOutdatedError, StoreUnavailableError
from airflow_wfe.store.engine import get_engine, masked_url, unavailable

__all__ = [
    "HEAD_REVISION",
    "VERSION_TABLE",
    "current_revision",
    "ensure_schema",
    "is_sqlite_locked",
    "upgrade",
]

#: Alembic version table of the store; distinct from Airflow's ``alembic_version``.
VERSION_TABLE: Final = "wfe_alembic_version"
#: The revision this package's code reads and writes. A test keeps it equal to Alembic's head.
HEAD_REVISION: Final = "0008"

#: PostgreSQL advisory-lock key that serialises migrations of the store ("wfe" + schema).
_LOCK_KEY: Final = 0x7766_6553_4348

_LOCKED_ATTEMPTS: Final = 20

_checked: set[str] = set()


def is_sqlite_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked": another process holds the lock; trying again succeeds."""
    return "database is locked" in str(getattr(exc, "orig", exc))


def current_revision(engine: Engine) -> str | None:
    """The store's revision, or ``None`` for a database without the store's tables."""
    for attempt in range(1, _LOCKED_ATTEMPTS + 1):
        try:
            with engine.connect() as connection:
                if not inspect(connection).has_table(VERSION_TABLE):
                    return None
                row = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
            return None if row is None else str(row[0])
        except (OperationalError, ProgrammingError) as exc:
            # A brand-new SQLite file switching to WAL while another process creates the schema
            # answers "database is locked" without waiting; it clears within moments.
            if attempt < _LOCKED_ATTEMPTS and is_sqlite_locked(exc):
                time.sleep(0.05 * attempt)
                continue
            raise unavailable(engine.url, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the store at ``url`` to ``revision``; returns (revision before, revision after)."""
    from alembic import command
    from alembic.config import Config

    engine = get_engine(url)
    before = current_revision(engine)
    # Alembic logs every step at INFO; in a process whose logging writes to stdout (Airflow's
    # configuration does) that would corrupt a command's output, e.g. `wfe ... --json`.
    alembic_log = logging.getLogger("alembic")
    saved_level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", "airflow_wfe.store:migrations")
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Many workers may find an empty store at once: one migrates, the others wait here
                # and then find nothing left to do (DDL racing DDL deadlocks on PostgreSQL).
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        # Another process may have created the schema at the same moment; what counts is the result.
        if current_revision(engine) != HEAD_REVISION:
            raise StoreUnavailableError(masked_url(engine.url), _first_line(exc)) from exc
    finally:
        alembic_log.setLevel(saved_level)
    after = current_revision(engine)
    _checked.discard(url)
    return before, after


def ensure_schema(url: str) -> Engine:
    """The engine for ``url`` once its schema is known to be current (checked once per process).

    Raises:
        SchemaOutdatedError: the store holds an older (or unknown) revision.
        StoreUnavailableError: the store cannot be opened.
    """
    engine = get_engine(url)
    if url in _checked:
        return engine
    found = current_revision(engine)
    if found is None:
        upgrade(url)
        found = current_revision(engine)
    if found != HEAD_REVISION:
        raise SchemaOutdatedError(masked_url(engine.url), found, HEAD_REVISION)
    _checked.add(url)
    return engine


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
