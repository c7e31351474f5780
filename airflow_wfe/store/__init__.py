"""The state store: runs, steps and transitions in airflow-wfe's own database."""

from __future__ import annotations

import functools

from airflow_wfe.core.records import Move, RunRecord, RunSummary, StepRecord, TransitionRecord
from airflow_wfe.store.sql_store import SqlStore, Store

__all__ = [
    "Move",
    "RunRecord",
    "RunSummary",
    "SqlStore",
    "StepRecord",
    "Store",
    "TransitionRecord",
    "get_store",
]


@functools.cache
def get_store(url: str) -> SqlStore:
    """One store object per URL per process (its engine and schema check are shared)."""
    return SqlStore(url)
