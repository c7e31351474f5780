"""Which task instances and DAG runs are governed, and what a process remembers between hooks.

Kept apart from the hooks (``listener.py``) because the cluster policy asks the same questions at
parse time and before a governed task executes (:func:`is_governed_tags`,
:func:`harness_failure_for`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_wfe.config import GOVERNED_TAG, GovernMode, get_settings

if TYPE_CHECKING:
    from airflow_wfe.engine.recorder import Recorder

__all__ = [
    "dag_run_governed",
    "ensure_run_started",
    "harness_failure_for",
    "is_governed_tags",
    "map_index_of",
    "remember_start_failure",
    "task_governed",
    "ti_key",
]

# (dag_id, run_id, task_id, map_index, try_number) -> the error that kept a start from being recorded.
_start_failures: dict[tuple[str, str, str, int, int], BaseException] = {}
_start_failures_lock = threading.Lock()

#: Runs this process has seen at RUNNING or beyond, per recorder (so per store), with the provenance
#: facts it has reported for them. No run ever goes back to CREATED or VALIDATED, so once a
#: ``run_started`` has returned, every later one for the same run writes no transition; it could only
#: fill facts still empty, which is why the facts reported are remembered too. Skipping those calls
#: saves a write transaction in every task hook (docs/performance.md).
_running_runs: weakref.WeakKeyDictionary[Recorder, dict[tuple[str, str], frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)
_running_runs_lock = threading.Lock()
#: Bound per recorder: a scheduler sees runs without end; forgetting only costs a no-op transaction.
_MAX_RUNNING_RUNS = 10_000


def ensure_run_started(
    recorder: Recorder,
    dag_id: str,
    run_id: str,
    *,
    actor: str,
    reason: str,
    facts: Mapping[str, str | None] | None = None,
) -> None:
    """``recorder.run_started``, skipped when this process already brought the run to RUNNING and
    reported the same facts (the store would find nothing to write)."""
    reported = frozenset(k for k, v in (facts or {}).items() if v)
    key = (dag_id, run_id)
    with _running_runs_lock:
        known = _running_runs.get(recorder, {}).get(key)
    if known is not None and reported <= known:
        return
    recorder.run_started(dag_id, run_id, actor=actor, reason=reason, facts=facts)
    with _running_runs_lock:
        runs = _running_runs.setdefault(recorder, {})
        if len(runs) >= _MAX_RUNNING_RUNS:
            runs.clear()
        runs[key] = reported | (known or frozenset())


def is_governed_tags(tags: Any) -> bool:
    """Whether a DAG with these tags is governed under the current settings."""
    settings = get_settings()
    if not settings.enabled:
        return False
    if settings.govern is GovernMode.ALL:
        return True
    return GOVERNED_TAG in set(tags or ())


def remember_start_failure(ti: Any, exc: BaseException) -> None:
    """Keep the error that kept this try's start from being recorded (``fail_closed``)."""
    with _start_failures_lock:
        _start_failures[ti_key(ti)] = exc


def harness_failure_for(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> BaseException | None:
    """The error that kept this try's start from being recorded, if any (and forget it)."""
    with _start_failures_lock:
        return _start_failures.pop((dag_id, run_id, task_id, map_index, try_number), None)


def ti_key(ti: Any) -> tuple[str, str, str, int, int]:
    return (
        ti.dag_id,
        ti.run_id,
        ti.task_id,
        map_index_of(ti),
        int(getattr(ti, "try_number", 0) or 0),
    )


def map_index_of(ti: Any) -> int:
    value = getattr(ti, "map_index", -1)
    return -1 if value is None else int(value)


def _task_dag_tags(ti: Any) -> Any:
    task = getattr(ti, "task", None)
    dag = getattr(task, "dag", None) if task is not None else None
    return getattr(dag, "tags", None) if dag is not None else None


def task_governed(ti: Any) -> bool:
    """Whether the task instance's hooks record anything."""
    from airflow_wfe.adapters.saga.tasks import is_saga_task

    if is_saga_task(ti.task_id):
        return False  # saga tasks record their effect on the steps they compensate
    tags = _task_dag_tags(ti)
    if tags is not None:
        return is_governed_tags(tags)
    # An ORM task instance changed by hand in the API server carries no DAG: it is governed when its
    # run was recorded.
    if not get_settings().enabled:
        return False
    return _run_known(ti.dag_id, ti.run_id)


def dag_run_governed(dag_run: Any) -> bool:
    """Whether the DAG run's hooks record anything."""
    dag = getattr(dag_run, "dag", None)
    if dag is not None:
        return is_governed_tags(getattr(dag, "tags", None))
    if not get_settings().enabled:
        return False
    return _run_known(dag_run.dag_id, dag_run.run_id)


def _run_known(dag_id: str, run_id: str) -> bool:
    from airflow_wfe.engine.harness import get_runtime_store
    from airflow_wfe.exceptions import RunNotFoundError

    try:
        get_runtime_store().get_run(dag_id, run_id)
    except RunNotFoundError:
        return False
    return True
