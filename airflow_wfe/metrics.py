"""Deprecated since 0.2: import record_business_metric from :mod:`airflow_wfe`."""

from __future__ import annotations

from airflow_wfe._moved import moved

__getattr__ = moved(
    __name__,
    {
        "record_business_metric": "airflow_wfe.adapters.task.business_metrics",
    },
)
