"""The state store: everything airflow-wfe persists, behind the :class:`Store` contract."""

from __future__ import annotations

import functools

from airflow_wfe.core.records import Move, RunRecord, RunSummary, StepRecord, TransitionRecord
from airflow_wfe.store.contract import RunPlan, StepPlan, Store
from airflow_wfe.store.sql_store import SqlStore

__all__ = [
    "Move",
    "RunPlan",
    "RunRecord",
    "RunSummary",
    "SqlStore",
    "StepPlan",
    "StepRecord",
    "Store",
    "TransitionRecord",
    "get_store",
]


@functools.cache
def get_store(url: str) -> SqlStore:
    """One store object per URL per process (its engine and schema check are shared)."""
    return SqlStore(url)
