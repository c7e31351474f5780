"""The facts a gate hands the policy engine, gathered from Airflow's task context and the store.

``run``: ``dag_id``, ``run_id``, ``run_type``, ``tags``, ``params``, ``conf``, ``triggered_by``,
``owner``; ``step``: ``id`` plus what the gate declares (``risk``, ...); ``cost``: ``reserve`` and
what was ``spent`` per budget scope; ``now``; and whatever the gate adds (``metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow_wfe.core.values import plain

__all__ = ["gather_facts", "triggering_user"]


def triggering_user(context: Mapping[str, Any]) -> str | None:
    """Who triggered the run (``None`` for scheduled runs and ``dags test``)."""
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None)
    return str(user) if user else None


def gather_facts(
    context: Mapping[str, Any],
    *,
    step_id: str,
    step: Mapping[str, Any],
    reserve: float,
    spent: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts for one gate evaluation (plain JSON-like data, recorded with the decision)."""
    dag_run = context.get("dag_run")
    task = context.get("task")
    dag = getattr(task, "dag", None)
    params = context.get("params") or {}
    run_type = getattr(dag_run, "run_type", None)
    facts: dict[str, Any] = {
        "run": {
            "dag_id": getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", ""),
            "run_id": getattr(dag_run, "run_id", ""),
            "run_type": None if run_type is None else str(getattr(run_type, "value", run_type)),
            "tags": sorted(getattr(dag, "tags", None) or ()),
            "params": plain(dict(params)),
            "conf": plain(getattr(dag_run, "conf", None) or {}),
            "triggered_by": triggering_user(context),
            "owner": getattr(task, "owner", None),
        },
        "step": {"id": step_id, **plain(dict(step))},
        "cost": {"reserve": float(reserve), "spent": plain(dict(spent))},
        "now": datetime.now(UTC),
        "metrics": {},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(facts.get(key), dict):
            facts[key] = {**facts[key], **plain(dict(value))}
        else:
            facts[key] = plain(value)
    return facts
