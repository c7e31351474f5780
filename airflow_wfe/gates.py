"""Deprecated since 0.2: import PolicyGateOperator, policy_gate from :mod:`airflow_wfe`."""

from __future__ import annotations

from airflow_wfe._moved import moved

__getattr__ = moved(
    __name__,
    {
        "PolicyGateOperator": "airflow_wfe.adapters.gates.operator",
        "policy_gate": "airflow_wfe.adapters.gates.decorator",
    },
)
