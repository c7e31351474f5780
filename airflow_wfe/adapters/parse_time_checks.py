"""Parse-time governance: what every task of a governed DAG must declare.

Run by the cluster policy wherever Airflow parses a DAG file, so a DAG that breaks the rules never
reaches the scheduler: Airflow shows the file's import error with every problem listed. Which checks
apply is ``[wfe] parse_time_checks`` (none by default, so adopting airflow-wfe breaks nothing):

* ``owner``: each task has an owner other than Airflow's default ``airflow``;
* ``retries``: each task retries at least once;
* ``execution_timeout``: each task has an execution timeout;
* ``tags``: the DAG has a tag besides ``wfe``;
* ``compensation``: each task declared with side effects declares a compensation or is irreversible.

Gates (a retry would only ask again; a person's wait is bounded by the policy's timeout) and the saga
tasks airflow-wfe adds are exempt from the task checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from airflow_wfe.config import PARSE_TIME_CHECKS

__all__ = ["CHECKS", "check_dag"]

#: The checks ``[wfe] parse_time_checks`` may name (parsed in :mod:`airflow_wfe.config`).
CHECKS: Final = PARSE_TIME_CHECKS
_DEFAULT_OWNER: Final = "airflow"


def _exempt(task: Any) -> bool:
    from airflow_wfe.adapters.saga.tasks import is_saga_task

    if is_saga_task(task.task_id):
        return True
    return any(cls.__name__ == "PolicyGateOperator" for cls in type(task).__mro__)


def check_dag(dag: Any, checks: Iterable[str], governed_tag: str = "wfe") -> list[str]:
    """Every violation of ``checks`` in ``dag``, as sentences naming the task and the fix."""
    from airflow_wfe.adapters.saga.declare import declared_compensation, has_side_effects

    wanted = set(checks)
    problems: list[str] = []
    if "tags" in wanted and not set(dag.tags or ()) - {governed_tag}:
        problems.append("the DAG has no tags besides 'wfe' (add team or domain tags)")
    for task in dag.tasks:
        if _exempt(task):
            continue
        name = f"task {task.task_id!r}"
        if "owner" in wanted and (not task.owner or task.owner == _DEFAULT_OWNER):
            problems.append(f"{name} has no owner (set default_args={{'owner': 'team'}})")
        if "retries" in wanted and not (task.retries or 0) >= 1:
            problems.append(f"{name} has no retries (set retries >= 1)")
        if "execution_timeout" in wanted and task.execution_timeout is None:
            problems.append(f"{name} has no execution_timeout")
        if (
            "compensation" in wanted
            and has_side_effects(task)
            and declared_compensation(task) is None
        ):
            problems.append(f"{name} has side effects but neither compensate() nor irreversible()")
    return problems
