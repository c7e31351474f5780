"""Saga compensation: declare how steps are undone; the saga tasks undo them when a run fails."""

from __future__ import annotations

from airflow_wfe.adapters.saga.declare import (
    Compensation,
    compensate,
    declared_compensation,
    irreversible,
)

__all__ = ["Compensation", "compensate", "declared_compensation", "irreversible"]
