"""The process-wide harness: settings, store, emitter and recorder, built on first use.

Adapters (listeners, operators, CLI, API) get their recorder here; the core never does, it receives
its collaborators as arguments. Nothing is built at import time, because DAG files import the package.
"""

from __future__ import annotations

import functools

from airflow_wfe.config import get_settings, reset_settings
from airflow_wfe.metrics import get_emitter, reset_emitter
from airflow_wfe.recorder import Recorder
from airflow_wfe.store import SqlStore, get_store

__all__ = ["get_recorder", "get_runtime_store", "reset_runtime"]


def get_runtime_store() -> SqlStore:
    """The store named by ``[wfe] store_conn``."""
    return get_store(get_settings().store_conn)


@functools.cache
def get_recorder() -> Recorder:
    """The recorder every adapter of this process uses."""
    return Recorder(get_runtime_store(), get_emitter())


def reset_runtime() -> None:
    """Forget everything cached (tests that change configuration in one process)."""
    from airflow_wfe.store.engine import dispose_engines

    get_recorder.cache_clear()
    get_store.cache_clear()
    reset_settings()
    reset_emitter()
    dispose_engines()
