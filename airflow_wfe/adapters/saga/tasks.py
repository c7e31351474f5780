"""What the saga tasks do when they run: decide, undo, conclude.

``saga__begin`` runs once every forward step is done (it is downstream of all of them). If a step
failed, it moves the run FAILED → COMPENSATING and publishes the plan (which steps, which map
indexes) as its XCom; otherwise it skips, and so does everything after it. Each
``compensate__<step>`` task undoes the map indexes of its step that succeeded, in reverse dependency
order, recording SUCCEEDED → COMPENSATING → COMPENSATED on the step. ``saga__end`` concludes the run
COMPENSATED or COMPENSATION_FAILED. All three are Airflow teardown tasks, so Airflow's own verdict on
the run (failed) is left alone.

A retried compensation skips the map indexes the store already shows COMPENSATED, and calls the
function again with the same idempotency key for one left COMPENSATING by a crash: a compensation
must be idempotent for its key, and is never re-applied once it has been recorded as done.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from airflow_wfe.adapters.saga.declare import Compensation
from airflow_wfe.core.states import StepState

__all__ = [
    "COMPENSATE_PREFIX",
    "SAGA_BEGIN",
    "SAGA_END",
    "begin",
    "compensate_step",
    "compensation_task_id",
    "end",
    "idempotency_key",
    "is_saga_task",
]

SAGA_BEGIN: Final = "saga__begin"
SAGA_END: Final = "saga__end"
COMPENSATE_PREFIX: Final = "compensate__"
ACTOR: Final = "saga"


def compensation_task_id(step_id: str) -> str:
    """The task id of a step's compensation task."""
    return f"{COMPENSATE_PREFIX}{step_id}"


def is_saga_task(task_id: str) -> bool:
    """Whether a task id belongs to the saga machinery rather than to a forward step."""
    return task_id in (SAGA_BEGIN, SAGA_END) or task_id.startswith(COMPENSATE_PREFIX)


def idempotency_key(dag_id: str, run_id: str, step_id: str, map_index: int) -> str:
    """A key that is the same for every try of one step instance's compensation, and only for it."""
    digest = hashlib.sha256(
        f"{dag_id}\x1f{run_id}\x1f{step_id}\x1f{map_index}".encode()
    ).hexdigest()
    return f"wfe-{digest[:32]}"


def _skip(reason: str) -> Exception:
    from airflow.sdk.exceptions import AirflowSkipException

    return AirflowSkipException(reason)


def _forward_states(ti: Any) -> list[tuple[str, int, str]]:
    """(task_id, map_index, state) of every finished forward task instance of this run."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    crumbs = RuntimeTaskInstance.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=ti.run_id)
    return [
        (
            c["task_id"],
            int(c.get("map_index", -1) if c.get("map_index") is not None else -1),
            str(c["state"]),
        )
        for c in crumbs
        if not is_saga_task(c["task_id"]) and c.get("state") is not None
    ]


def _saga_task_states(ti: Any) -> dict[str, str]:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    crumbs = RuntimeTaskInstance.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=ti.run_id)
    return {c["task_id"]: str(c["state"]) for c in crumbs if is_saga_task(c["task_id"])}


def begin(*, ti: Any, compensable: list[str], irreversible: list[str]) -> dict[str, Any]:
    """``saga__begin``: skip when nothing failed, else record the failure and publish the plan."""
    from airflow_wfe.engine.harness import get_recorder

    recorder = get_recorder()
    states = _forward_states(ti)
    tolerated = _tolerated(recorder, ti)
    failed = sorted(
        {task_id for task_id, _, state in states if state == "failed" and task_id not in tolerated}
    )
    if not failed and not _manually_requested(recorder, ti):
        raise _skip("no step failed: nothing to compensate")
    succeeded: dict[str, list[int]] = {}
    for task_id, map_index, state in states:
        if state == "success":
            succeeded.setdefault(task_id, []).append(map_index)
    undo = {step: sorted(succeeded[step]) for step in compensable if step in succeeded}
    stuck = sorted(step for step in irreversible if step in succeeded)
    recorder.saga_started(
        ti.dag_id,
        ti.run_id,
        failed=failed,
        compensating=sorted(undo),
        irreversible=stuck,
        actor=ACTOR,
    )
    return {"failed": failed, "undo": undo, "irreversible": stuck}


def _tolerated(recorder: Any, ti: Any) -> set[str]:
    """Tasks whose failed instances a rollout's wave check let through (within its
    ``max_failed``): the rollout went on, so they are not the run failing."""
    return {
        task_id
        for decision in recorder.store.decisions(ti.dag_id, ti.run_id)
        if decision.kind == "wave"
        for task_id in (decision.details or {}).get("tolerated", ())
    }


def _manually_requested(recorder: Any, ti: Any) -> bool:
    """Whether ``wfe compensate`` asked for this run to be compensated (and that request is why
    the run is COMPENSATING now)."""
    return recorder.store.open_compensation_request(ti.dag_id, ti.run_id) is not None


def _plan(ti: Any) -> dict[str, Any]:
    plan = ti.xcom_pull(task_ids=SAGA_BEGIN)
    if not isinstance(plan, dict):
        raise _skip("the run did not fail: nothing to compensate")
    return plan


def _call(function: Callable[..., Any], available: Mapping[str, Any]) -> Any:
    """Call ``function`` with the values it names (all of them if it takes ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return function(**available)
    names = {p.name for p in parameters}
    return function(**{k: v for k, v in available.items() if k in names})


def _start(ti: Any, step_id: str, map_index: int) -> bool:
    """Record the step instance as COMPENSATING; False when it is already COMPENSATED."""
    from airflow_wfe.engine.harness import get_recorder

    recorder = get_recorder()
    current = recorder.store.step_states(ti.dag_id, ti.run_id).get((step_id, map_index))
    if current is StepState.COMPENSATED:
        return False
    # The success report of the step may still be on its way (it is sent after Airflow learns the
    # state): bring the step to SUCCEEDED first, a no-op when it is there already.
    recorder.reconcile_step(
        ti.dag_id,
        ti.run_id,
        step_id,
        StepState.SUCCEEDED,
        actor=ACTOR,
        reason="succeeded (seen by the saga)",
        map_index=map_index,
    )
    recorder.step(
        ti.dag_id,
        ti.run_id,
        step_id,
        StepState.COMPENSATING,
        actor=ACTOR,
        reason=f"compensation try {ti.try_number}",
        map_index=map_index,
        try_number=int(ti.try_number),
    )
    return True


def _done(ti: Any, step_id: str, map_index: int) -> None:
    from airflow_wfe.engine.harness import get_recorder

    get_recorder().step(
        ti.dag_id,
        ti.run_id,
        step_id,
        StepState.COMPENSATED,
        actor=ACTOR,
        reason="compensation succeeded",
        map_index=map_index,
        try_number=int(ti.try_number),
    )


def compensate_step(step_id: str, compensation: Compensation, context: Mapping[str, Any]) -> Any:
    """``compensate__<step>`` with a function: undo every succeeded map index of the step."""
    ti = context["ti"]
    indexes = _plan(ti)["undo"].get(step_id)
    if indexes is None:
        raise _skip(f"step {step_id} did not succeed in this run: nothing to undo")
    assert compensation.function is not None
    results = []
    for map_index in indexes:
        if not _start(ti, step_id, map_index):
            continue
        result = ti.xcom_pull(task_ids=step_id, map_indexes=map_index if map_index >= 0 else None)
        key = idempotency_key(ti.dag_id, ti.run_id, step_id, map_index)
        available = {**context, "result": result, "idempotency_key": key, "map_index": map_index}
        results.append(_call(compensation.function, available))
        _done(ti, step_id, map_index)
    return results


def before_operator(step_id: str) -> Callable[[Mapping[str, Any]], None]:
    """Pre-execute hook of an operator compensation: skip, or record COMPENSATING and push the key."""

    def hook(context: Mapping[str, Any]) -> None:
        ti = context["ti"]
        indexes = _plan(ti)["undo"].get(step_id)
        if indexes is None:
            raise _skip(f"step {step_id} did not succeed in this run: nothing to undo")
        started = [index for index in indexes if _start(ti, step_id, index)]
        if not started:
            raise _skip(f"step {step_id} is already compensated")
        ti.xcom_push(
            key="idempotency_key", value=idempotency_key(ti.dag_id, ti.run_id, step_id, started[0])
        )

    return hook


def after_operator(step_id: str) -> Callable[[Mapping[str, Any], Any], None]:
    """Post-execute hook of an operator compensation: record COMPENSATED."""

    def hook(context: Mapping[str, Any], result: Any = None) -> None:
        ti = context["ti"]
        for map_index in _plan(ti)["undo"].get(step_id, []):
            _done(ti, step_id, map_index)

    return hook


def end(*, ti: Any) -> str:
    """``saga__end``: conclude the run COMPENSATED or COMPENSATION_FAILED."""
    from airflow_wfe.engine.harness import get_recorder

    plan = _plan(ti)
    undo: dict[str, list[int]] = plan["undo"]
    stuck: list[str] = plan["irreversible"]
    if not undo and not stuck:
        raise _skip("nothing was compensated: the run stays FAILED")
    recorder = get_recorder()
    task_states = _saga_task_states(ti)
    current = recorder.store.step_states(ti.dag_id, ti.run_id)
    failed_steps = []
    for step_id, indexes in undo.items():
        done = all(current.get((step_id, i)) is StepState.COMPENSATED for i in indexes)
        if done or task_states.get(compensation_task_id(step_id)) == "success":
            continue
        failed_steps.append(step_id)
        outcome = task_states.get(compensation_task_id(step_id), "never ran")
        for map_index in indexes:
            state = current.get((step_id, map_index))
            if state is StepState.SUCCEEDED:
                recorder.step(
                    ti.dag_id,
                    ti.run_id,
                    step_id,
                    StepState.COMPENSATING,
                    actor=ACTOR,
                    reason="compensation was due",
                    map_index=map_index,
                )
                state = StepState.COMPENSATING
            if state is StepState.COMPENSATING:
                recorder.step(
                    ti.dag_id,
                    ti.run_id,
                    step_id,
                    StepState.COMPENSATION_FAILED,
                    actor=ACTOR,
                    reason=f"{compensation_task_id(step_id)}: {outcome}",
                    map_index=map_index,
                )
    reasons = []
    if failed_steps:
        reasons.append(f"compensation failed for: {', '.join(sorted(failed_steps))}")
    if stuck:
        reasons.append(f"irreversible step(s) had succeeded: {', '.join(stuck)}")
    succeeded = not reasons
    reason = f"all {len(undo)} compensation(s) succeeded" if succeeded else "; ".join(reasons)
    recorder.saga_finished(ti.dag_id, ti.run_id, succeeded=succeeded, reason=reason, actor=ACTOR)
    return reason
