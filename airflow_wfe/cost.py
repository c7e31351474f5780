"""Deprecated since 0.2: import record_cost from :mod:`airflow_wfe`."""

from __future__ import annotations

from airflow_wfe._moved import moved

__getattr__ = moved(
    __name__,
    {
        "record_cost": "airflow_wfe.adapters.task.cost",
    },
)
