"""The Airflow listener that turns task-instance and DAG-run events into recorded transitions.

Where each hook fires (see docs/airflow3.md): task hooks in the task process (or the ``dags test``
process), DAG-run hooks in the scheduler (and the ``dags test`` process), manual changes in the API
server. Every hook is wrapped: a failure is logged as a warning and counted, never raised into
Airflow, and the task carries on. With ``[wfe] fail_closed`` a failure to record a task's start is
also remembered, so the governed task's pre-execute check (installed by the cluster policy) fails it.
Every hook times itself (``wfe.listener.duration.<hook>``, docs/metrics.md).

Steps that no task hook ever reports (skipped or upstream_failed by the scheduler, a worker killed
mid-task) are reconciled from Airflow's own task-instance states when the run ends. In a scheduler,
DAG-run hooks read in the loop's thread and write on a writer thread, and the process loads what
task hooks need before it forks (:mod:`airflow_wfe.adapters.listeners.process`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

from airflow.listeners import hookimpl

from airflow_wfe.adapters.listeners import changes, process
from airflow_wfe.adapters.listeners.facts import (
    dag_run_facts,
    mask_and_run_facts,
    task_instance_states,
)
from airflow_wfe.adapters.listeners.mapping import STEP_STATE_OF_TI, describe_error, run_end_reason
from airflow_wfe.adapters.listeners.scope import (
    dag_run_governed,
    ensure_run_started,
    harness_failure_for,
    is_governed_tags,
    map_index_of,
    rejected_at_preflight,
    remember_start_failure,
    start_task,
    task_governed,
)
from airflow_wfe.config import get_settings
from airflow_wfe.core.metrics import names
from airflow_wfe.core.reconciliation import needs_reconciling
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.emitter import get_emitter

__all__ = ["WfeListener", "get_listener", "harness_failure_for", "is_governed_tags"]

WORKER = "worker"
SCHEDULER = "scheduler"


@contextlib.contextmanager
def _timed(hook: str) -> Iterator[None]:
    """Send how long the hook held its caller (task or scheduler loop) as a StatsD timer."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        with contextlib.suppress(Exception):  # metrics never break a hook
            get_emitter().timing(names.listener_duration(hook), elapsed_ms)


class WfeListener:
    """Records governed runs; registered by :class:`airflow_wfe.plugin.WfePlugin`."""

    # -- process lifecycle (scheduler, dag-processor, triggerer, task processes) ------------------

    @hookimpl
    def on_starting(self, component: Any) -> None:
        process.prepare(component)

    @hookimpl
    def before_stopping(self, component: Any) -> None:
        process.drain()

    # -- task instances (task process, dags-test process, API server for manual changes) ---------

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        with _timed("on_task_instance_running"):
            try:
                if not task_governed(task_instance):
                    return
                self._task_running(task_instance)
            except Exception as exc:  # noqa: BLE001 - a listener must never break the task
                process.report_failure("on_task_instance_running", exc)
                if get_settings().fail_closed:
                    remember_start_failure(task_instance, exc)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        with _timed("on_task_instance_success"):
            self._task_end(task_instance, StepState.SUCCEEDED, "task succeeded", "success")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        with _timed("on_task_instance_failed"):
            raw = getattr(task_instance, "state", None)
            state = str(getattr(raw, "value", raw) or "")
            target = StepState.RETRYING if state == "up_for_retry" else StepState.FAILED
            task = getattr(task_instance, "task", None)
            timeout = getattr(task, "execution_timeout", None)
            reason = describe_error(error, timeout=timeout)
            self._task_end(task_instance, target, reason, "failed")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        with _timed("on_task_instance_skipped"):
            self._task_end(task_instance, StepState.SKIPPED, "task skipped itself", "skipped")

    @staticmethod
    def _task_running(ti: Any) -> None:
        from airflow_wfe.engine.harness import get_recorder

        recorder = get_recorder()
        facts = mask_and_run_facts(ti, recorder.store.audit.redactor.sensitive_values)
        # The run-start check and the step's RUNNING: one store transaction when the run is
        # under way (the scheduler started it), the pre-flight first when no one has run it.
        start_task(
            recorder,
            ti.dag_id,
            ti.run_id,
            ti.task_id,
            actor=WORKER,
            run_reason=f"task {ti.task_id} started",
            step_reason="task started",
            facts=facts,
            candidate=lambda: _candidate_of_task(ti),
            map_index=map_index_of(ti),
            try_number=int(ti.try_number),
        )

    @staticmethod
    def _task_end(ti: Any, target: StepState, reason: str, hook: str) -> None:
        try:
            if not task_governed(ti):
                return
            from airflow_wfe.engine.harness import get_recorder

            recorder = get_recorder()
            ensure_run_started(
                recorder, ti.dag_id, ti.run_id, actor=WORKER, reason=f"task {ti.task_id} reported"
            )
            map_index = map_index_of(ti)
            try_number = int(getattr(ti, "try_number", 0) or 0) or None
            refused = rejected_at_preflight(ti.dag_id, ti.run_id)
            if refused is not None and target is StepState.FAILED:
                # The pre-execute check refused the task: the step never ran.
                target = StepState.SKIPPED
                reason = "not run: the run was REJECTED at its pre-flight (see the run's history)"
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
            process.report_failure(f"on_task_instance_{hook}", exc)

    # -- DAG runs (scheduler, dags-test process, API server for manual changes) ------------------

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        hook = "on_dag_run_running"
        with _timed(hook):
            try:
                if not dag_run_governed(dag_run):
                    return
                # Read everything from the ORM object here, in the loop's thread.
                from airflow_wfe.adapters.listeners.preflight import candidate_of_dag_run

                dag_id, run_id = dag_run.dag_id, dag_run.run_id
                facts = dag_run_facts(dag_run)
                candidate = candidate_of_dag_run(dag_run)
                trigger = changes.trigger_of(dag_run)
                session = None
                if not process.in_background():
                    from sqlalchemy.orm import object_session

                    # Inline, the import reads through the caller's own session (a new one
                    # would detach its objects); the writer thread opens a session of its own.
                    session = object_session(dag_run)

                def write() -> None:
                    from airflow_wfe.adapters.listeners.airflow_log import sync_soon
                    from airflow_wfe.adapters.listeners.preflight import preflight
                    from airflow_wfe.engine.harness import get_recorder

                    recorder = get_recorder()
                    # The run's pre-flight, off the loop's thread (policies, maybe the ledger).
                    written = recorder.run_preflight(
                        dag_id,
                        run_id,
                        preflight(recorder, candidate),
                        actor=SCHEDULER,
                        reason="scheduler started the run",
                        facts=facts,
                    ).written
                    if written and trigger is not None:
                        changes.record_trigger(recorder, trigger)
                    # Clears and deletions fire no listener: import them from Airflow's log now
                    # and then.
                    sync_soon(recorder.store, session)

                process.dispatch(hook, write)
            except Exception as exc:  # noqa: BLE001 - never break the scheduler loop
                process.report_failure(hook, exc)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        with _timed("on_dag_run_success"):
            self._run_end(dag_run, msg, succeeded=True)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        with _timed("on_dag_run_failed"):
            self._run_end(dag_run, msg, succeeded=False)

    @staticmethod
    def _run_end(dag_run: Any, msg: str, *, succeeded: bool) -> None:
        hook = "on_dag_run_success" if succeeded else "on_dag_run_failed"
        try:
            if not dag_run_governed(dag_run):
                return
            dag_id, run_id = dag_run.dag_id, dag_run.run_id
            dag = getattr(dag_run, "dag", None)
            deployment = "deployment" in set(getattr(dag, "tags", None) or ())
            manual = "manually set" in (msg or "")
            actor = SCHEDULER
            if manual:
                from sqlalchemy.orm import object_session

                from airflow_wfe.adapters.listeners.airflow_log import latest_user

                user = latest_user(object_session(dag_run), dag_id, run_id)
                actor = f"user:{user}" if user else "user"
            facts = dag_run_facts(dag_run)
            # Through the loop's own session, in its thread: one query selecting columns.
            ti_states = task_instance_states(dag_run)
            reason = run_end_reason(msg)
            compensation = None if succeeded else _auto_compensation(dag_run, msg, actor, reason)

            def write() -> None:
                from airflow_wfe.engine.harness import get_recorder

                recorder = get_recorder()
                if deployment:
                    from airflow_wfe.engine.transition_metrics import mark_deployment

                    mark_deployment(dag_id)  # its end emits the DORA gauges
                recorder.run_started(
                    dag_id, run_id, actor=actor, reason="run reached its end", facts=facts
                )
                _reconcile(recorder, dag_id, run_id, ti_states)
                written = recorder.run_finished(
                    dag_id, run_id, succeeded=succeeded, actor=actor, reason=reason
                )
                if manual:
                    changes.after_manual_run_change(
                        recorder, dag_id, run_id, succeeded, actor, written
                    )
                if compensation is not None:
                    from airflow_wfe.adapters.saga.manual import compensate_failed_run

                    compensate_failed_run(recorder, dag_id, run_id, **compensation)

            process.dispatch(hook, write)
        except Exception as exc:  # noqa: BLE001 - never break the scheduler loop
            process.report_failure(hook, exc)


def _candidate_of_task(ti: Any) -> Any:
    """The run's pre-flight candidate, read only when this task runs the pre-flight (the module is
    not loaded by a task whose run is already RUNNING)."""
    from airflow_wfe.adapters.listeners.preflight import candidate_of_task

    return candidate_of_task(ti)


def _auto_compensation(dag_run: Any, msg: str, actor: str, reason: str) -> dict[str, Any] | None:
    """How to compensate a run Airflow failed without running its saga, or ``None``.

    Two ways end a run so: its ``dagrun_timeout`` (the scheduler) and a person marking it failed
    (the API server, inside the request, where every task instance still running was failed and
    every pending one, the saga's included, skipped). The second compensates through the request's
    own session and the run's DAG, so the saga tasks' clear commits with the change that caused it
    (a session of our own would wait on the request's uncommitted write to the run).
    """
    dag = getattr(dag_run, "dag", None)
    if not _compensates_itself(dag):
        return None
    if msg == "timed_out":
        return {"why": reason, "actor": SCHEDULER}
    if "manually set" not in (msg or ""):
        return None
    from sqlalchemy.orm import object_session

    return {
        "why": f"the run was marked failed by hand in Airflow ({actor})",
        "actor": actor,
        "dag": dag,
        "session": object_session(dag_run),
    }


def _compensates_itself(dag: Any) -> bool:
    """Whether a run of ``dag`` that Airflow failed without a failed step is compensated
    automatically: the DAG has a saga and does not opt out with its tag."""
    from airflow_wfe.adapters.saga.manual import NO_AUTO_COMPENSATION_TAG
    from airflow_wfe.adapters.saga.tasks import SAGA_BEGIN

    if dag is None or NO_AUTO_COMPENSATION_TAG in set(getattr(dag, "tags", None) or ()):
        return False
    return SAGA_BEGIN in set(getattr(dag, "task_ids", None) or ())


def _reconcile(
    recorder: Any, dag_id: str, run_id: str, ti_states: list[tuple[str, int, str, int]]
) -> None:
    """Record the steps no task hook reported, from Airflow's task-instance states at run end.

    One read first: at a normal run end every step is already where Airflow says, and a
    reconciliation that writes nothing still costs a write transaction per task. The plan re-checks
    inside its transaction, so a race stays safe.
    """
    # Through the recorder: with the store away it answers {} (every step reconciled, each
    # re-checked inside its own, possibly spooled, transaction) instead of raising.
    recorded = recorder.recorded_step_states(dag_id, run_id)
    for task_id, map_index, ti_state, try_number in ti_states:
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


@functools.cache
def get_listener() -> WfeListener:
    """The process's single listener instance."""
    return WfeListener()
