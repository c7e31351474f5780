"""The process-wide harness: settings, store, emitter and recorder, built on first use.

Adapters (listeners, operators, CLI, API) get their recorder here; the core never does, it receives
its collaborators as arguments. Nothing is built at import time, because DAG files import the package.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from airflow_wfe.config import get_settings, reset_settings
from airflow_wfe.core.metrics import names
from airflow_wfe.engine.emitter import get_emitter, metrics_settings, reset_emitter
from airflow_wfe.engine.recorder import Recorder, SpoolPlace
from airflow_wfe.store import SqlStore, Store, get_store
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import StoreBounds, configure_bounds, masked_url
from airflow_wfe.store.schema import ensure_schema

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = [
    "build_audit_log",
    "get_emitter",
    "get_recorder",
    "get_runtime_store",
    "metrics_settings",
    "rehearsal",
    "reset_emitter",
    "reset_runtime",
    "spool_place",
]


@functools.cache
def get_runtime_store() -> Store:
    """The store named by ``[wfe] store_conn``, with the audit log ``[wfe]`` describes.

    Typed as the contract: callers use what every store implementation answers, never the SQL
    store's internals.
    """
    settings = get_settings()
    emitter = get_emitter()
    configure_bounds(
        StoreBounds(
            connect=settings.store_connect_timeout,
            statement=settings.store_statement_timeout,
            lock=settings.store_lock_timeout,
        ),
        on_timeout=lambda bound: emitter.incr(names.store_timeout(bound)),
    )
    return SqlStore(settings.store_conn, audit=build_audit_log())


def spool_place() -> SpoolPlace:
    """This host's spool file for the configured store (``[wfe] spool_path``).

    One file per host, so a spool folder on a shared disk never mixes two hosts' orders, and per
    store (a key of its URL), so a fact is only ever replayed into the store it was meant for.
    """
    settings = get_settings()
    key = hashlib.sha256(settings.store_conn.encode()).hexdigest()[:16]
    return SpoolPlace(
        file=settings.spool_path / f"{os.uname().nodename}__{key}.jsonl",
        max_bytes=settings.spool_max_mb * 1024 * 1024,
        store=masked_url(settings.store_conn),
    )


def build_audit_log() -> AuditLog:
    """The audit log of this process: configured key, redaction list and Airflow's masker."""
    from airflow_wfe.core.audit.redact import DEFAULT_SENSITIVE_NAMES, Redactor
    from airflow_wfe.core.audit.signing import load_signer

    settings = get_settings()
    emitter = get_emitter()
    return AuditLog(
        signer=load_signer(settings.audit_signing_key, settings.airflow_home / "wfe_audit.key"),
        redactor=Redactor(
            (*DEFAULT_SENSITIVE_NAMES, *settings.audit_redact), masker=_airflow_masker()
        ),
        checkpoint_every=settings.audit_checkpoint_interval,
        on_written=lambda count: emitter.incr(names.AUDIT_EVENTS, count),
        anchor_dir=settings.audit_anchor_dir,
        partitions=settings.audit_partitions,
    )


def _airflow_masker() -> Callable[[str], str]:
    """Airflow's secrets maskers (the Task SDK's in task processes, the core one elsewhere).

    Airflow registers every connection password, sensitive variable and ``mask_secret`` value with
    the masker of the process that fetched it; applying both covers whichever one this process uses.
    Imported on the first text to mask: importing them imports Airflow (about a second), which a
    command that only reads the store (``wfe runs list``) never needs.
    """
    maskers: list[Callable[..., object]] | None = None

    def mask(text: str) -> str:
        nonlocal maskers
        if maskers is None:
            maskers = []
            for module in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
                try:
                    maskers.append(importlib.import_module(module).redact)
                except ImportError:
                    continue
        for redact in maskers:
            text = str(redact(text))
        return text

    return mask


@functools.cache
def get_recorder() -> Recorder:
    """The recorder every adapter of this process uses."""
    return Recorder(
        get_runtime_store(),
        get_emitter(),
        spool=spool_place(),
        fail_closed=get_settings().fail_closed,
    )


T = TypeVar("T")


class _RehearsalStore(SqlStore):
    """The SQL store with every write transaction a savepoint of one outer transaction, which
    :func:`rehearsal` rolls back: the writes run their real statements and write nothing."""

    def __init__(self, url: str, *, audit: AuditLog, connection: Connection) -> None:
        super().__init__(url, audit=audit)
        self._connection = connection

    def _write(self, key: str, attempt: Callable[[Connection], T]) -> T:
        with self._connection.begin_nested():
            return attempt(self._connection)


class _OtherThreads(logging.Filter):
    """Lets through the records of every thread but the rehearsing one."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def rehearsal() -> Iterator[Recorder]:
    """A recorder whose writes run against the configured store and are all rolled back.

    Why: a process that forks task processes (a scheduler, a Celery worker) runs this before its
    forks, so each task inherits what a write builds on first use (SQLAlchemy's compiled statements
    of the write path, the store's schema check, the audit log's key resolution) instead of
    building it at its first hook. What it writes nothing to: the store (one transaction, rolled
    back; every write a savepoint in it), the audit trail (its own audit log, no checkpoint, no
    anchor), metrics (a null emitter), the spool (none), the logs (this thread's transition lines
    are dropped while it lasts). Afterwards the store's pooled connections are closed, so no
    connection is held across the fork (a forked child also drops its copy of the pool: store
    engine). Raises what the store raises (the caller logs it: a rehearsal is only an optimisation).
    """
    from airflow_wfe.core.audit.signing import GeneratedKey
    from airflow_wfe.core.metrics.emitter import NullEmitter

    settings = get_settings()
    store = get_runtime_store()
    if not isinstance(store, SqlStore):
        raise TypeError(f"no rehearsal for a {type(store).__name__}")
    engine = ensure_schema(settings.store_conn)
    real = store.audit
    signer = real.signer
    # A generated key still to be resolved may create its file: the rehearsal signs nothing then.
    rehearsal_log = AuditLog(
        signer=None if isinstance(signer, GeneratedKey) else signer,
        redactor=real.redactor,
        checkpoint_every=0,
        partitions=real.partitions,
    )
    quiet = _OtherThreads()
    recorder_log = logging.getLogger("airflow_wfe.engine.recorder")
    try:
        with engine.connect() as connection:
            outer = connection.begin()
            try:
                if isinstance(signer, GeneratedKey) and signer.existing() is not None:
                    # The key file is there, so resolving it creates nothing: do it once here.
                    real.ready_signer(connection)
                recorder_log.addFilter(quiet)
                yield Recorder(
                    _RehearsalStore(
                        settings.store_conn, audit=rehearsal_log, connection=connection
                    ),
                    NullEmitter(),
                    spool=None,
                    fail_closed=True,
                )
            finally:
                recorder_log.removeFilter(quiet)
                outer.rollback()
    finally:
        engine.dispose()  # no connection of this process survives into its forks


def reset_runtime() -> None:
    """Forget everything cached (tests that change configuration in one process)."""
    from airflow_wfe.store.engine import dispose_engines

    get_recorder.cache_clear()
    get_runtime_store.cache_clear()
    get_store.cache_clear()
    reset_settings()
    reset_emitter()
    dispose_engines()
