"""airflow-wfe: workflow engineering for Apache Airflow 3.

Governs ordinary Airflow DAGs: explicit run and step states recorded in a state store, with
compensation, policy gates, an audit trail and metrics built on top. A DAG opts in with the ``wfe`` tag
(or every DAG, with ``[wfe] govern = all``).

Everything a DAG author needs is imported from here (``from airflow_wfe import compensate,
PolicyGateOperator, record_cost``). Exports are lazy: importing this package from a DAG file costs next to nothing, because Airflow
re-parses DAG files in every task process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_wfe.version import __version__

if TYPE_CHECKING:
    from airflow_wfe.adapters.compile.folder import load_workflows, report_workflow_errors
    from airflow_wfe.adapters.gates.canary import CanaryGateOperator
    from airflow_wfe.adapters.gates.decorator import canary_gate, policy_gate, quality_gate
    from airflow_wfe.adapters.gates.operator import PolicyGateOperator
    from airflow_wfe.adapters.gates.quality import QualityGateOperator
    from airflow_wfe.adapters.gates.waves import rollout
    from airflow_wfe.adapters.saga.declare import compensate, irreversible
    from airflow_wfe.adapters.task.artifacts import use_artifact
    from airflow_wfe.adapters.task.business_metrics import record_business_metric
    from airflow_wfe.adapters.task.cost import record_cost
    from airflow_wfe.config import GOVERNED_TAG, Settings, get_settings
    from airflow_wfe.core.states import RunState, StepState
    from airflow_wfe.exceptions import IllegalTransitionError, WfeError

__all__ = [
    "GOVERNED_TAG",
    "CanaryGateOperator",
    "IllegalTransitionError",
    "PolicyGateOperator",
    "QualityGateOperator",
    "RunState",
    "Settings",
    "StepState",
    "WfeError",
    "__version__",
    "canary_gate",
    "compensate",
    "get_settings",
    "irreversible",
    "load_workflows",
    "policy_gate",
    "quality_gate",
    "record_business_metric",
    "record_cost",
    "report_workflow_errors",
    "rollout",
    "use_artifact",
]

_LAZY = {
    "GOVERNED_TAG": "airflow_wfe.config",
    "Settings": "airflow_wfe.config",
    "get_settings": "airflow_wfe.config",
    "IllegalTransitionError": "airflow_wfe.exceptions",
    "WfeError": "airflow_wfe.exceptions",
    "RunState": "airflow_wfe.core.states",
    "StepState": "airflow_wfe.core.states",
    "load_workflows": "airflow_wfe.adapters.compile.folder",
    "report_workflow_errors": "airflow_wfe.adapters.compile.folder",
    "compensate": "airflow_wfe.adapters.saga.declare",
    "irreversible": "airflow_wfe.adapters.saga.declare",
    "PolicyGateOperator": "airflow_wfe.adapters.gates.operator",
    "policy_gate": "airflow_wfe.adapters.gates.decorator",
    "QualityGateOperator": "airflow_wfe.adapters.gates.quality",
    "CanaryGateOperator": "airflow_wfe.adapters.gates.canary",
    "rollout": "airflow_wfe.adapters.gates.waves",
    "quality_gate": "airflow_wfe.adapters.gates.decorator",
    "canary_gate": "airflow_wfe.adapters.gates.decorator",
    "record_cost": "airflow_wfe.adapters.task.cost",
    "record_business_metric": "airflow_wfe.adapters.task.business_metrics",
    "use_artifact": "airflow_wfe.adapters.task.artifacts",
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
