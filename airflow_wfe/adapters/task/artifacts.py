"""Versioned artifacts: content-addressed versions of prompts, creatives or configuration, one of
them active per name, with a record of which runs used which version.

Inside a task, :func:`use_artifact` reads an artifact and records its use for the current run::

    from airflow.sdk import task
    from airflow_wfe.adapters.task.artifacts import use_artifact

    @task
    def summarise(text: str) -> str:
        template = use_artifact("prompts/summary").decode()
        return call_model(template.format(text=text))

Exports are lazy, like the package's: a DAG file that imports this module loads neither SQLAlchemy
nor the store.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_wfe.core.artifact_records import (
        ArtifactActivation,
        ArtifactHistory,
        ArtifactSummary,
        ArtifactUse,
        ArtifactVersion,
        version_for,
    )
    from airflow_wfe.exceptions import ArtifactError, ArtifactNotFoundError
    from airflow_wfe.store.artifacts import ArtifactRegistry

__all__ = [
    "ArtifactActivation",
    "ArtifactError",
    "ArtifactHistory",
    "ArtifactNotFoundError",
    "ArtifactRegistry",
    "ArtifactSummary",
    "ArtifactUse",
    "ArtifactVersion",
    "use_artifact",
    "version_for",
]

#: Where each export lives: the records in the core (no SQLAlchemy), the errors in the exception
#: tree; only the SQL registry itself (deprecated here: use ``store.artifacts``) loads the store.
_LAZY = {
    **dict.fromkeys(__all__, "airflow_wfe.core.artifact_records"),
    "ArtifactError": "airflow_wfe.exceptions",
    "ArtifactNotFoundError": "airflow_wfe.exceptions",
    "ArtifactRegistry": "airflow_wfe.store.artifacts",
}
del _LAZY["use_artifact"]


def use_artifact(name: str, version: str | None = None) -> bytes:
    """The content of the artifact's version this run is pinned to (or of ``version``), recorded
    as used by the current run.

    Call it inside an Airflow task. A governed run reads the version that was active when the run
    started, and keeps reading it: a rollback or activation made meanwhile applies to later runs.
    The use is recorded through the configured state store (``[wfe] store_conn``); for an
    ungoverned run (not in the store) the active version is returned and nothing is recorded.

    Raises:
        ArtifactNotFoundError: no such artifact or version, or no active version.
        StoreUnavailableError: the state store cannot be reached.
    """
    from airflow.sdk import get_current_context

    from airflow_wfe.engine.harness import get_runtime_store
    from airflow_wfe.exceptions import RunNotFoundError

    ti = get_current_context()["ti"]
    registry = get_runtime_store().artifacts
    if version is None:
        try:
            artifact = registry.use_pinned(ti.dag_id, ti.run_id, name)
        except RunNotFoundError:  # ungoverned: no run to pin to or link the version to
            artifact = registry.active(name)
        assert artifact.content is not None
        return artifact.content
    artifact = registry.get(name, version)
    with contextlib.suppress(RunNotFoundError):
        registry.record_use(ti.dag_id, ti.run_id, name, artifact.version)
    assert artifact.content is not None  # get() and active() always load it
    return artifact.content


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(
            f"module 'airflow_wfe.adapters.task.artifacts' has no attribute {name!r}"
        )
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
