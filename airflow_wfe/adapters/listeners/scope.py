"""Which task instances and DAG runs are governed, and what a process remembers between hooks.

Kept apart from the hooks (``listener.py``) because the cluster policy asks the same questions at
parse time and before a governed task executes (:func:`is_governed_tags`,
:func:`harness_failure_for`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_wfe.config import GOVERNED_TAG, GovernMode, get_settings
from airflow_wfe.core.states import RunState, StepState

if TYPE_CHECKING:
    from airflow_wfe.engine.preflight import RunCandidate
    from airflow_wfe.engine.recorder import Recorder, RunStart

__all__ = [
    "dag_run_governed",
    "ensure_run_started",
    "harness_failure_for",
    "is_governed_tags",
    "map_index_of",
    "rejected_at_preflight",
    "remember_start_failure",
    "start_task",
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

#: Runs this process found REJECTED at their pre-flight, with the reason: the governed task's
#: pre-execute check refuses their tasks without asking the store again.
_rejected_runs: dict[tuple[str, str], str] = {}
_PREFLIGHT_SOURCES = frozenset({RunState.CREATED, RunState.VALIDATED})


def rejected_at_preflight(dag_id: str, run_id: str) -> str | None:
    """Why this run was rejected at its pre-flight, if this process saw it so (no I/O)."""
    with _running_runs_lock:
        return _rejected_runs.get((dag_id, run_id))


def ensure_run_started(
    recorder: Recorder,
    dag_id: str,
    run_id: str,
    *,
    actor: str,
    reason: str,
    facts: Mapping[str, str | None] | None = None,
    candidate: Callable[[], RunCandidate] | None = None,
) -> None:
    """``recorder.run_started``, skipped when this process already brought the run to RUNNING and
    reported the same facts (the store would find nothing to write).

    With ``candidate`` (a task starting), a run no one has pre-flighted yet (``dags test``, where no
    DAG-run hook fires, or a task racing the scheduler's writer) gets its pre-flight here, and a
    run found REJECTED at its pre-flight is remembered for :func:`rejected_at_preflight`. The state
    comes from the run-start transaction itself: a run already RUNNING costs no extra read.
    """
    reported = frozenset(k for k, v in (facts or {}).items() if v)
    key = (dag_id, run_id)
    with _running_runs_lock:
        if key in _rejected_runs:
            return
        known = _running_runs.get(recorder, {}).get(key)
    if known is not None and reported <= known:
        return
    start = recorder.start_run(
        dag_id,
        run_id,
        actor=actor,
        reason=reason,
        facts=facts,
        preflight_pending=candidate is not None,
    )
    _settle_start(
        recorder, start, key, reported | (known or frozenset()), actor, reason, facts, candidate
    )


def start_task(
    recorder: Recorder,
    dag_id: str,
    run_id: str,
    step_id: str,
    *,
    actor: str,
    run_reason: str,
    step_reason: str,
    facts: Mapping[str, str | None] | None,
    candidate: Callable[[], RunCandidate],
    map_index: int = -1,
    try_number: int | None = None,
) -> None:
    """A task starts: its run's start check and its step's RUNNING.

    Under a scheduler the run is already under way and both go in one store transaction
    (:meth:`~airflow_wfe.engine.recorder.Recorder.task_started`). A run not yet under way takes
    the path of :func:`ensure_run_started` (its pre-flight, or the memory of its rejection), then
    the step is reported on its own unless the run was rejected at its pre-flight.
    """
    key = (dag_id, run_id)
    with _running_runs_lock:
        if key in _rejected_runs:
            return  # the step never runs: its pre-execute check refuses it
        known = _running_runs.get(recorder, {}).get(key)
    reported = frozenset(k for k, v in (facts or {}).items() if v) | (known or frozenset())
    started = recorder.task_started(
        dag_id,
        run_id,
        step_id,
        actor=actor,
        run_reason=run_reason,
        step_reason=step_reason,
        facts=facts,
        map_index=map_index,
        try_number=try_number,
    )
    if started.step is not None:
        if started.run.known:
            _remember_running(recorder, key, reported)
        return
    _settle_start(recorder, started.run, key, reported, actor, run_reason, facts, candidate)
    if rejected_at_preflight(dag_id, run_id) is not None:
        return  # the step never runs: its pre-execute check refuses it
    recorder.step(
        dag_id,
        run_id,
        step_id,
        StepState.RUNNING,
        actor=actor,
        reason=step_reason,
        map_index=map_index,
        try_number=try_number,
    )


def _settle_start(
    recorder: Recorder,
    start: RunStart,
    key: tuple[str, str],
    reported: frozenset[str],
    actor: str,
    reason: str,
    facts: Mapping[str, str | None] | None,
    candidate: Callable[[], RunCandidate] | None,
) -> None:
    """After a run-start report: the pre-flight of a run left CREATED for it, the memory of a run
    rejected at its pre-flight, and of a run seen under way."""
    dag_id, run_id = key
    if start.known and start.state in (None, RunState.CREATED) and candidate is not None:
        from airflow_wfe.adapters.listeners.preflight import preflight

        result = preflight(recorder, candidate())
        start = recorder.run_preflight(
            dag_id, run_id, result, actor=actor, reason=reason, facts=facts
        )
    if not start.known or start.state is None:
        return  # spooled: nothing known, ask again at the next task
    if start.state is RunState.REJECTED:
        why = _preflight_rejection(recorder, dag_id, run_id, start)
        if why is not None:
            with _running_runs_lock:
                if len(_rejected_runs) >= _MAX_RUNNING_RUNS:
                    _rejected_runs.clear()
                _rejected_runs[key] = why
            return
    _remember_running(recorder, key, reported)


def _remember_running(recorder: Recorder, key: tuple[str, str], reported: frozenset[str]) -> None:
    with _running_runs_lock:
        runs = _running_runs.setdefault(recorder, {})
        if len(runs) >= _MAX_RUNNING_RUNS:
            runs.clear()
        runs[key] = reported


def _preflight_rejection(
    recorder: Recorder, dag_id: str, run_id: str, start: RunStart
) -> str | None:
    """The reason of a REJECTED run's pre-flight refusal; ``None`` when a gate rejected it later
    (its other tasks, and its saga, go on as before)."""
    for record in reversed(start.written):
        if record.to_state == RunState.REJECTED:
            return record.reason if record.from_state in _PREFLIGHT_SOURCES else None
    run = recorder.store.get_run(dag_id, run_id)
    for record in reversed(run.transitions):
        if record.to_state == RunState.REJECTED:
            if record.from_state not in _PREFLIGHT_SOURCES:
                return None
            return record.reason or "rejected at pre-flight"
    return None


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
