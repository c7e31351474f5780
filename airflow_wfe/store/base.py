"""The store's write path and reader connections: what every part of :class:`~.SqlStore` builds on.

Every write of the store is one transaction run by :meth:`StoreBase._write`, again after losing a race
to another writer; every read runs in a connection from :meth:`StoreBase._read`. Both are private to
the store package: code outside it states what it wants through the methods of the
:class:`~airflow_wfe.store.contract.Store` contract, never as SQL of its own.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from airflow_wfe.exceptions import ConcurrentUpdateError, RunNotFoundError
from airflow_wfe.store.audit_writer import AuditLog, ChainConflict
from airflow_wfe.store.engine import READ_ONLY, begin_write, bounds, unavailable
from airflow_wfe.store.schema import ensure_schema, is_sqlite_locked
from airflow_wfe.store.tables import run_table

__all__ = ["Conflict", "StoreBase", "run_pk"]

_MAX_ATTEMPTS: Final = 12
#: PostgreSQL SQLSTATEs worth retrying: deadlock detected, serialization failure.
_TRANSIENT_SQLSTATES: Final = frozenset({"40P01", "40001"})
T = TypeVar("T")


class Conflict(Exception):
    """A concurrent writer changed the row between our read and our write; start over."""


def _is_transient(exc: BaseException) -> bool:
    """A deadlock, a serialization failure or a busy SQLite file: trying again succeeds."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES or is_sqlite_locked(exc)


def run_pk(connection: Connection, dag_id: str, run_id: str) -> int:
    """The run's primary key, for facts written against an existing run.

    Raises:
        RunNotFoundError: the run is not in the store (its DAG is not governed, or it has not
            started yet).
    """
    pk = connection.execute(
        select(run_table.c.id).where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
    ).scalar()
    if pk is None:
        raise RunNotFoundError(dag_id, run_id)
    return int(pk)


class StoreBase:
    """The database, the audit log, and the two ways in: a retried write transaction, a reader.

    Args:
        url: SQLAlchemy URL. The schema is created on first use of an empty database; an outdated
            one raises :class:`~airflow_wfe.exceptions.SchemaOutdatedError`.
        audit: the audit log (signer, redactor, checkpoints); by default unsigned, names-only
            redaction, which is what unit tests and tools without Airflow get.
    """

    def __init__(self, url: str, *, audit: AuditLog | None = None) -> None:
        self.url = url
        self.audit = audit or AuditLog()
        self._engine_cache: Engine | None = None

    @property
    def _engine(self) -> Engine:
        # Opened on first use: building a store object costs nothing until it is used.
        if self._engine_cache is None:
            self._engine_cache = ensure_schema(self.url)
        return self._engine_cache

    def _write(self, key: str, attempt: Callable[[Connection], T]) -> T:
        """Run ``attempt`` in one write transaction, again after losing a race to another writer.

        ``attempt`` reads what it needs under lock and writes; a unique-constraint race, a version
        conflict, a deadlock or a serialization failure rolls it back and runs it again with the
        other writer's result visible. ``key`` names the contended entity in the error when the
        retries run out. A busy store is retried only within ``[wfe] store_lock_timeout``
        (:mod:`.engine`): past it the write fails as unavailable, naming the bound.
        """
        deadline = time.monotonic() + bounds().lock
        for number in range(1, _MAX_ATTEMPTS + 1):
            try:
                with begin_write(self._engine) as connection:
                    return attempt(connection)
            except (Conflict, ChainConflict, IntegrityError):
                # Lost a race on a new row or a version; the other writer's result is now visible.
                time.sleep(random.uniform(0, 0.005 * number))
            except Exception as exc:
                # The audit append runs on the driver's own cursor: its errors arrive unwrapped.
                driver_error = self._engine.dialect.loaded_dbapi.OperationalError
                if not isinstance(exc, OperationalError | driver_error):
                    raise
                if _is_transient(exc) and time.monotonic() < deadline:
                    time.sleep(random.uniform(0, 0.01 * number))
                    continue
                raise unavailable(
                    self._engine.url, exc, "lock" if _is_transient(exc) else None
                ) from exc
        raise ConcurrentUpdateError(key, _MAX_ATTEMPTS)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A reader's connection: no write lock on SQLite, and a driver failure at any point of
        the read becomes :class:`~airflow_wfe.exceptions.StoreUnavailableError`."""
        try:
            with self._engine.connect().execution_options(**{READ_ONLY: True}) as connection:
                yield connection
        except OperationalError as exc:
            raise unavailable(self._engine.url, exc) from exc

    def _scalar(self, query: Any) -> Any:
        """One value read in a reader's connection (``None`` when no row matches)."""
        with self._read() as connection:
            return connection.execute(query).scalar()
