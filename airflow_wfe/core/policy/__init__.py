"""Policies: models of the YAML files, the pure engine, and reading ``[wfe] policy_path``.

Imported by gates when they run, never by DAG files at parse time (CEL and croniter load here).
"""

from __future__ import annotations

from airflow_wfe.core.policy.engine import Approval, Decision, LoadedPolicy, Reason, evaluate
from airflow_wfe.core.policy.files import (
    PolicySet,
    load_policy_file,
    load_policy_folder,
    load_policy_set,
    load_policy_set_cached,
    parse_policy,
    select,
)
from airflow_wfe.core.policy.models import Outcome, Policy

__all__ = [
    "Approval",
    "Decision",
    "LoadedPolicy",
    "Outcome",
    "Policy",
    "PolicySet",
    "Reason",
    "evaluate",
    "load_policy_file",
    "load_policy_folder",
    "load_policy_set",
    "load_policy_set_cached",
    "parse_policy",
    "select",
]
