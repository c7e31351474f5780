"""Deprecated since 0.2: import use_artifact, ArtifactRegistry from :mod:`airflow_wfe`."""

from __future__ import annotations

from airflow_wfe._moved import moved

__getattr__ = moved(
    __name__,
    {
        "use_artifact": "airflow_wfe.adapters.task.artifacts",
        "ArtifactRegistry": "airflow_wfe.store.artifacts",
    },
)
