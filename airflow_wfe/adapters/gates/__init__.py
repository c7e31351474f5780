"""Policy gates: an operator, a TaskFlow-style decorator, and the logic they share.

Importing this package is cheap (the operator module imports Airflow's HITL operator, which a DAG
file with a gate needs anyway); the policy engine, CEL and the store load only when a gate runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "CanaryGateOperator",
    "PolicyGateOperator",
    "QualityGateOperator",
    "canary_gate",
    "policy_gate",
    "quality_gate",
    "rollout",
]

if TYPE_CHECKING:
    from airflow_wfe.adapters.gates.canary import CanaryGateOperator
    from airflow_wfe.adapters.gates.decorator import canary_gate, policy_gate, quality_gate
    from airflow_wfe.adapters.gates.operator import PolicyGateOperator
    from airflow_wfe.adapters.gates.quality import QualityGateOperator
    from airflow_wfe.adapters.gates.waves import rollout


def __getattr__(name: str) -> Any:
    if name == "PolicyGateOperator":
        from airflow_wfe.adapters.gates.operator import PolicyGateOperator

        return PolicyGateOperator
    if name == "policy_gate":
        from airflow_wfe.adapters.gates.decorator import policy_gate

        return policy_gate
    if name == "quality_gate":
        from airflow_wfe.adapters.gates.decorator import quality_gate

        return quality_gate
    if name == "canary_gate":
        from airflow_wfe.adapters.gates.decorator import canary_gate

        return canary_gate
    if name == "rollout":
        from airflow_wfe.adapters.gates.waves import rollout

        return rollout
    if name == "CanaryGateOperator":
        from airflow_wfe.adapters.gates.canary import CanaryGateOperator

        return CanaryGateOperator
    if name == "QualityGateOperator":
        from airflow_wfe.adapters.gates.quality import QualityGateOperator

        return QualityGateOperator
    raise AttributeError(name)
