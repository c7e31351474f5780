"""The Airflow listener that turns task-instance and DAG-run events into recorded transitions.

Where each hook fires (see docs/airflow3.md): task hooks in the task process (or the ``dags test``
process), DAG-run hooks in the scheduler (and the ``dags test`` process), manual changes in the API
server. Every hook is wrapped: a failure is logged as a warning and counted, never raised into
Airflow, and the task carries on. With ``[wfe] fail_closed`` a failure to record a task's start is
also remembered, so the governed task's pre-execute check (installed by the cluster policy) fails it.

Steps that no task hook ever reports (skipped or upstream_failed by the scheduler, a worker killed
mid-task) are reconciled from Airflow's own task-instance states when the run ends.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

from airflow_wfe.adapters.listeners import changes
from airflow_wfe.adapters.listeners.mapping import STEP_STATE_OF_TI, describe_error, run_end_reason
from airflow_wfe.config import GOVERNED_TAG, GovernMode, get_settings
from airflow_wfe.core.metrics import names
from airflow_wfe.core.reconciliation import needs_reconciling
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.emitter import get_emitter

if TYPE_CHECKING:
    from airflow_wfe.engine.recorder import Recorder

__all__ = ["WfeListener", "get_listener", "harness_failure_for", "is_governed_tags"]

log = logging.getLogger("airflow_wfe.listener")

WORKER = "worker"
SCHEDULER = "scheduler"

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


def _ensure_run_started(
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


def harness_failure_for(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> BaseException | None:
    """The error that kept this try's start from being recorded, if any (and forget it)."""
    with _start_failures_lock:
        return _start_failures.pop((dag_id, run_id, task_id, map_index, try_number), None)


def _ti_key(ti: Any) -> tuple[str, str, str, int, int]:
    return (
        ti.dag_id,
        ti.run_id,
        ti.task_id,
        _map_index(ti),
        int(getattr(ti, "try_number", 0) or 0),
    )


def _map_index(ti: Any) -> int:
    value = getattr(ti, "map_index", -1)
    return -1 if value is None else int(value)


def _task_dag_tags(ti: Any) -> Any:
    task = getattr(ti, "task", None)
    dag = getattr(task, "dag", None) if task is not None else None
    return getattr(dag, "tags", None) if dag is not None else None


def _task_governed(ti: Any) -> bool:
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


def _run_known(dag_id: str, run_id: str) -> bool:
    from airflow_wfe.engine.harness import get_runtime_store
    from airflow_wfe.exceptions import RunNotFoundError

    try:
        get_runtime_store().get_run(dag_id, run_id)
    except RunNotFoundError:
        return False
    return True


def _dag_run_governed(dag_run: Any) -> bool:
    dag = getattr(dag_run, "dag", None)
    if dag is not None:
        return is_governed_tags(getattr(dag, "tags", None))
    if not get_settings().enabled:
        return False
    return _run_known(dag_run.dag_id, dag_run.run_id)


def _run_facts(ti: Any) -> dict[str, str | None]:
    """Provenance of the run as a task process sees it: run type, DAG version, spec version."""
    run_type: str | None = None
    try:
        dag_run = ti.get_template_context().get("dag_run")
        raw = getattr(dag_run, "run_type", None)
        run_type = None if raw is None else str(getattr(raw, "value", raw))
    except Exception:  # noqa: BLE001 - an ORM task instance has no template context; facts are optional
        run_type = None
    version = getattr(ti, "dag_version_id", None)
    facts: dict[str, str | None] = {
        "run_type": run_type,
        "dag_version_id": None if version is None else str(version),
    }
    from airflow_wfe.adapters.compile.provenance import spec_info

    info = spec_info(ti.dag_id)
    if info is not None:
        facts["spec_version"] = info.version
        facts["spec_hash"] = info.content_hash
    return facts


class WfeListener:
    """Records governed runs; registered by :class:`airflow_wfe.plugin.WfePlugin`."""

    # -- task instances (task process, dags-test process, API server for manual changes) ---------

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        try:
            if not _task_governed(task_instance):
                return
            self._task_running(task_instance)
        except Exception as exc:  # noqa: BLE001 - a listener must never break the task
            self._failed("on_task_instance_running", exc)
            if get_settings().fail_closed:
                with _start_failures_lock:
                    _start_failures[_ti_key(task_instance)] = exc

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._task_end(task_instance, StepState.SUCCEEDED, "task succeeded", "success")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        raw = getattr(task_instance, "state", None)
        state = str(getattr(raw, "value", raw) or "")
        target = StepState.RETRYING if state == "up_for_retry" else StepState.FAILED
        self._task_end(task_instance, target, describe_error(error), "failed")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._task_end(task_instance, StepState.SKIPPED, "task skipped itself", "skipped")

    def _task_running(self, ti: Any) -> None:
        from airflow_wfe.engine.harness import get_recorder

        recorder = get_recorder()
        _mask_sensitive_params(ti, recorder.store.audit.redactor.sensitive)
        _ensure_run_started(
            recorder,
            ti.dag_id,
            ti.run_id,
            actor=WORKER,
            reason=f"task {ti.task_id} started",
            facts=_run_facts(ti),
        )
        recorder.step(
            ti.dag_id,
            ti.run_id,
            ti.task_id,
            StepState.RUNNING,
            actor=WORKER,
            reason="task started",
            map_index=_map_index(ti),
            try_number=int(ti.try_number),
        )

    def _task_end(self, ti: Any, target: StepState, reason: str, hook: str) -> None:
        try:
            if not _task_governed(ti):
                return
            from airflow_wfe.engine.harness import get_recorder

            recorder = get_recorder()
            _ensure_run_started(
                recorder, ti.dag_id, ti.run_id, actor=WORKER, reason=f"task {ti.task_id} reported"
            )
            map_index = _map_index(ti)
            try_number = int(getattr(ti, "try_number", 0) or 0) or None
            if getattr(ti, "task", None) is None:
                # An ORM task instance without its operator: a state set by hand through the UI or
                # REST, reported by the API server. Record it through the states no one reported,
                # as done by the user Airflow's own audit log names; a change the state machine
                # cannot follow is flagged as a violation.
                changes.manual_step_change(recorder, ti, target, reason, map_index, try_number)
            else:
                recorder.step(
                    ti.dag_id,
                    ti.run_id,
                    ti.task_id,
                    target,
                    actor=WORKER,
                    reason=reason,
                    map_index=map_index,
                    try_number=try_number,
                )
        except Exception as exc:  # noqa: BLE001 - a listener must never break the task
            self._failed(f"on_task_instance_{hook}", exc)

    # -- DAG runs (scheduler, dags-test process, API server for manual changes) ------------------

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        try:
            if not _dag_run_governed(dag_run):
                return
            from airflow_wfe.engine.harness import get_recorder

            recorder = get_recorder()
            written = recorder.run_started(
                dag_run.dag_id,
                dag_run.run_id,
                actor=SCHEDULER,
                reason="scheduler started the run",
                facts=_dag_run_facts(dag_run),
            )
            if written:
                changes.record_trigger(recorder, dag_run)
            from sqlalchemy.orm import object_session

            from airflow_wfe.adapters.listeners.airflow_log import sync_soon

            # Clears and deletions fire no listener: import them from Airflow's log now and then,
            # through the scheduler's own session (a new one would detach its objects).
            sync_soon(recorder.store, object_session(dag_run))
        except Exception as exc:  # noqa: BLE001 - never break the scheduler loop
            self._failed("on_dag_run_running", exc)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        self._run_end(dag_run, msg, succeeded=True)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        self._run_end(dag_run, msg, succeeded=False)

    def _run_end(self, dag_run: Any, msg: str, *, succeeded: bool) -> None:
        try:
            if not _dag_run_governed(dag_run):
                return
            from airflow_wfe.engine.harness import get_recorder

            recorder = get_recorder()
            dag_id, run_id = dag_run.dag_id, dag_run.run_id
            dag = getattr(dag_run, "dag", None)
            if "deployment" in set(getattr(dag, "tags", None) or ()):
                from airflow_wfe.engine.transition_metrics import mark_deployment

                mark_deployment(dag_id)  # its end emits the DORA gauges
            manual = "manually set" in (msg or "")
            actor = SCHEDULER
            if manual:
                from sqlalchemy.orm import object_session

                from airflow_wfe.adapters.listeners.airflow_log import latest_user

                user = latest_user(object_session(dag_run), dag_id, run_id)
                actor = f"user:{user}" if user else "user"
            recorder.run_started(
                dag_id,
                run_id,
                actor=actor,
                reason="run reached its end",
                facts=_dag_run_facts(dag_run),
            )
            # One read first: at a normal run end every step is already where Airflow says, and a
            # reconciliation that writes nothing still costs a write transaction per task (in the
            # scheduler's loop). The plan re-checks inside its transaction, so a race stays safe.
            recorded = recorder.store.step_states(dag_id, run_id)
            for task_id, map_index, ti_state, try_number in _task_instance_states(dag_run):
                target = STEP_STATE_OF_TI.get(ti_state)
                if target is None or target is StepState.RETRYING:
                    continue
                if not needs_reconciling(recorded.get((task_id, map_index)), target):
                    continue
                recorder.reconcile_step(
                    dag_id,
                    run_id,
                    task_id,
                    target,
                    actor=SCHEDULER,
                    reason=f"reconciled at run end: Airflow reports {ti_state}",
                    map_index=map_index,
                    try_number=try_number or None,
                )
            written = recorder.run_finished(
                dag_id,
                run_id,
                succeeded=succeeded,
                actor=actor,
                reason=run_end_reason(msg),
            )
            if manual:
                changes.after_manual_run_change(recorder, dag_id, run_id, succeeded, actor, written)
        except Exception as exc:  # noqa: BLE001 - never break the scheduler loop
            self._failed("on_dag_run_success" if succeeded else "on_dag_run_failed", exc)

    # -- failures ----------------------------------------------------------------------------

    @staticmethod
    def _failed(hook: str, exc: BaseException) -> None:
        get_emitter().incr(names.LISTENER_ERRORS)
        log.warning("wfe listener %s could not record: %s: %s", hook, type(exc).__name__, exc)
        changes.record_plugin_error(hook, exc)


def _mask_sensitive_params(ti: Any, sensitive: Any) -> None:
    """Register run parameters under sensitive names with Airflow's secrets masker.

    Airflow masks connection passwords and sensitive variables itself, but not a parameter or run
    conf value named like a password; once registered, it is masked in the task's logs and in any
    error message the harness records.
    """
    try:
        context = ti.get_template_context()
    except Exception:  # noqa: BLE001 - an ORM task instance has no context; nothing to register
        return
    from airflow.sdk.log import mask_secret

    dag_run = context.get("dag_run")
    for source in (context.get("params"), getattr(dag_run, "conf", None)):
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            if isinstance(key, str) and sensitive(key) and value:
                mask_secret(value if isinstance(value, str) else str(value))


def _dag_run_facts(dag_run: Any) -> dict[str, str | None]:
    run_type = getattr(dag_run, "run_type", None)
    version = getattr(dag_run, "created_dag_version_id", None)
    return {
        "run_type": None if run_type is None else str(getattr(run_type, "value", run_type)),
        "dag_version_id": None if version is None else str(version),
    }


def _task_instance_states(dag_run: Any) -> list[tuple[str, int, str, int]]:
    """(task_id, map_index, state, try_number) of every TI of the run.

    In the scheduler the run is attached to the loop's session, and the query must use that very
    session: opening another one there detaches the DagRun and kills the scheduler loop. Under
    ``dags test`` the run object is already detached, so a short session of our own is safe; either
    way the query only selects columns and never touches the DagRun object.
    """
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    query = select(
        TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number
    ).where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
    session = object_session(dag_run)
    if session is not None:
        rows = session.execute(query).all()
    else:
        from airflow.utils.session import create_session

        with create_session() as own_session:
            rows = own_session.execute(query).all()
    from airflow_wfe.adapters.saga.tasks import is_saga_task

    result = []
    for task_id, map_index, state, try_number in rows:
        value = getattr(state, "value", state)
        if value is None or is_saga_task(task_id):
            continue
        result.append(
            (task_id, -1 if map_index is None else int(map_index), str(value), int(try_number or 0))
        )
    return result


@functools.cache
def get_listener() -> WfeListener:
    """The process's single listener instance."""
    return WfeListener()
