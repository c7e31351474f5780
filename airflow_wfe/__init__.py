"""airflow-wfe: workflow engineering for Apache Airflow 3.

Governs ordinary Airflow DAGs: explicit run and step states recorded in a state store, with
compensation, policy gates, an audit trail and metrics built on top. A DAG opts in with the ``wfe`` tag
(or every DAG, with ``[wfe] govern = all``).

Exports are lazy: importing this package from a DAG file costs next to nothing, because Airflow
re-parses DAG files in every task process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_wfe.version import __version__

if TYPE_CHECKING:
    from airflow_wfe.compile.folder import load_workflows, report_workflow_errors
    from airflow_wfe.config import GOVERNED_TAG, Settings, get_settings
    from airflow_wfe.exceptions import IllegalTransitionError, WfeError
    from airflow_wfe.recorder import Recorder
    from airflow_wfe.saga.declare import compensate, irreversible
    from airflow_wfe.states import RunState, StepState

__all__ = [
    "GOVERNED_TAG",
    "IllegalTransitionError",
    "Recorder",
    "RunState",
    "Settings",
    "StepState",
    "WfeError",
    "__version__",
    "compensate",
    "get_settings",
    "irreversible",
    "load_workflows",
    "report_workflow_errors",
]

_LAZY = {
    "GOVERNED_TAG": "airflow_wfe.config",
    "Settings": "airflow_wfe.config",
    "get_settings": "airflow_wfe.config",
    "IllegalTransitionError": "airflow_wfe.exceptions",
    "WfeError": "airflow_wfe.exceptions",
    "Recorder": "airflow_wfe.recorder",
    "RunState": "airflow_wfe.states",
    "StepState": "airflow_wfe.states",
    "load_workflows": "airflow_wfe.compile.folder",
    "report_workflow_errors": "airflow_wfe.compile.folder",
    "compensate": "airflow_wfe.saga.declare",
    "irreversible": "airflow_wfe.saga.declare",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_wfe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
