"""A tiny governed saga whose task processes SIGKILL themselves where each trial's plan says.

``wfe_kill_points``: ``reserve`` (side effect, compensated by ``release``) >> ``charge`` (side
effect; the last step, so not compensated; fails for good when the plan says ``fail``, so the saga
undoes ``reserve``). ``wfe_kill_points_gate``: the same with a policy gate (that allows) between
them. Each run's plan (``kp_plans.plan_for``) comes in its conf and names the task that dies, on
which tries and where: before or after its side effect, inside the gate before or after its
decision is recorded, inside a compensation before or after its effect, or inside the store
transaction of one of the recorder's writes (the listener's ``RUNNING``/``SUCCEEDED`` of a step,
the saga's ``COMPENSATING``/``COMPENSATED``).

The side effects go to a real ledger, the SQLite file ``WFE_KP_EFFECTS``: a step or compensation
applies its effect only if its idempotency key is not there yet (as a payment provider honours an
idempotency key), and every call, and every planned death, is noted first, so the test sees each try
and proves the kill happened. Used by ``tests/integration/test_kill_points.py`` only.

Test code, not product code: to die *inside* a store write, this file wraps the recorder's
``step``/``decision`` and the audit log's ``append`` (called inside the write's transaction, after
the state rows are written) in the processes that import it (task processes: the DAG is parsed
before the listener's first hook fires).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException
from kp_plans import DAG_ID, GATE_DAG_ID, parse_run_id, plan_for

from airflow_wfe import compensate
from airflow_wfe.adapters.gates import policy_gate
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store.audit_writer import AuditLog

#: A gate policy that allows a low-risk step (and would ask people for a high-risk one).
RISK = """
name: kp-risk
rules:
  - id: risky-needs-ok
    when: 'step.risk == "high"'
    decision: needs_approval
    reason: a risky change needs a person
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    run_id TEXT, task TEXT, try INTEGER, phase TEXT, key TEXT, pid INTEGER, at REAL);
CREATE TABLE IF NOT EXISTS effects (
    run_id TEXT, step TEXT, kind TEXT, key TEXT, pid INTEGER, at REAL);
"""


def _ledger() -> sqlite3.Connection:
    connection = sqlite3.connect(os.environ["WFE_KP_EFFECTS"], timeout=60, isolation_level=None)
    connection.executescript(_SCHEMA)
    return connection


def note(run_id: str, task_id: str, try_number: int, phase: str, key: str = "") -> None:
    """One call (or a planned death) of a task, committed before anything else happens."""
    with _ledger() as connection:
        connection.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, task_id, try_number, phase, key, os.getpid(), time.time()),
        )


def apply_effect(run_id: str, step: str, kind: str, key: str) -> bool:
    """The side effect, applied once per idempotency key (False: it was applied already)."""
    connection = _ledger()
    try:
        connection.execute("BEGIN IMMEDIATE")
        seen = connection.execute(
            "SELECT 1 FROM effects WHERE key = ? AND kind = ?", (key, kind)
        ).fetchone()
        if seen is None:
            connection.execute(
                "INSERT INTO effects VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, step, kind, key, os.getpid(), time.time()),
            )
        connection.execute("COMMIT")
        return seen is None
    finally:
        connection.close()


def die(run_id: str, task_id: str, try_number: int, where: str) -> None:
    """SIGKILL this task process (noted first): no handler, no listener, no cleanup runs."""
    note(run_id, task_id, try_number, f"killed:{where}")
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_here(plan: dict[str, Any], task_id: str, try_number: int, where: str) -> bool:
    kill = plan.get("kill")
    return (
        kill is not None
        and kill["task"] == task_id
        and kill["where"] == where
        and "to" not in kill
        and try_number <= int(kill["deaths"])
    )


def maybe_die(plan: dict[str, Any], run_id: str, task_id: str, try_number: int, where: str) -> None:
    if _kill_here(plan, task_id, try_number, where):
        time.sleep(float(plan["kill"]["delay"]))
        die(run_id, task_id, try_number, where)


def _forward(step: str, context: dict[str, Any]) -> dict[str, str]:
    plan = dict(context["dag_run"].conf)
    run_id, try_number = context["run_id"], int(context["ti"].try_number)
    key = f"{step}:{run_id}"
    note(run_id, step, try_number, "call", key)
    maybe_die(plan, run_id, step, try_number, "before_effect")
    if plan["fail"] and step == "charge":
        raise AirflowFailException("card declined (the trial's plan)")
    apply_effect(run_id, step, "do", key)
    maybe_die(plan, run_id, step, try_number, "after_effect")
    return {"key": key}


def _undo(step: str, result: Any, idempotency_key: str, ti: Any, dag_run: Any) -> str:
    plan = dict(dag_run.conf)
    task_id, try_number = f"compensate__{step}", int(ti.try_number)
    note(ti.run_id, task_id, try_number, "call", idempotency_key)
    maybe_die(plan, ti.run_id, task_id, try_number, "before_effect")
    if plan.get("slow"):
        time.sleep(float(plan["slow"]) / 2)
    applied = apply_effect(ti.run_id, step, "undo", idempotency_key)
    if plan.get("slow"):
        time.sleep(float(plan["slow"]) / 2)
    maybe_die(plan, ti.run_id, task_id, try_number, "after_effect")
    note(ti.run_id, task_id, try_number, "done", idempotency_key)
    return f"undid {result['key']} ({'applied' if applied else 'already applied'})"


def release(result: Any, idempotency_key: str, ti: Any, dag_run: Any) -> str:
    return _undo("reserve", result, idempotency_key, ti, dag_run)


# -- dying inside the recorder's own writes (test code wrapping the product in this process) ------

_armed = threading.local()
_gate_try = threading.local()


def _write_plan(run_id: str) -> dict[str, Any] | None:
    trial = parse_run_id(run_id)
    if trial is None:
        return None
    kill = plan_for(*trial).get("kill")
    return kill if kill is not None and "to" in kill else None


def _wrap_step(original: Callable[..., Any]) -> Callable[..., Any]:
    def step(
        self: Recorder, dag_id: str, run_id: str, step_id: str, to_state: Any, **kw: Any
    ) -> Any:
        state = str(getattr(to_state, "value", to_state))
        return _armed_write(
            run_id,
            step_id,
            state,
            kw,
            lambda: original(self, dag_id, run_id, step_id, to_state, **kw),
        )

    return step


def _wrap_task_started(original: Callable[..., Any]) -> Callable[..., Any]:
    # A task's start writes its step's RUNNING with the run-start check, in one transaction
    # (Recorder.task_started), when the scheduler has started the run: die inside that one too.
    def task_started(self: Recorder, dag_id: str, run_id: str, step_id: str, **kw: Any) -> Any:
        return _armed_write(
            run_id,
            step_id,
            "RUNNING",
            kw,
            lambda: original(self, dag_id, run_id, step_id, **kw),
        )

    return task_started


def _armed_write(
    run_id: str, step_id: str, state: str, kw: dict[str, Any], write: Callable[[], Any]
) -> Any:
    kill = _write_plan(run_id)
    try_number = int(kw.get("try_number") or 0)
    hit = (
        kill is not None
        and kill["task"] == step_id
        and kill["to"] == state
        and kill["actor"] == kw.get("actor")
        and 1 <= try_number <= int(kill["deaths"])
    )
    where = f"write:{state}:{kill['where']}" if hit and kill else ""
    _armed.where = where if hit and kill and kill["where"] != "after_commit" else ""
    _armed.who = (run_id, step_id, try_number)
    try:
        written = write()
    finally:
        _armed.where = ""
    if hit and kill and kill["where"] == "after_commit":
        die(run_id, step_id, try_number, where)
    return written


def _wrap_append(original: Callable[..., Any]) -> Callable[..., Any]:
    def append(self: AuditLog, connection: Any, events: Any) -> Any:
        where = getattr(_armed, "where", "")
        if where.endswith(":before_audit"):
            die(*_armed.who, where)
        sealed = original(self, connection, events)
        if where.endswith(":after_audit"):
            die(*_armed.who, where)
        return sealed

    return append


def _wrap_decision(original: Callable[..., Any]) -> Callable[..., Any]:
    def decision(self: Recorder, dag_id: str, run_id: str, step_id: str, **kw: Any) -> Any:
        result = original(self, dag_id, run_id, step_id, **kw)
        trial = parse_run_id(run_id)
        if trial is not None:
            try_number = int(getattr(_gate_try, "value", 0))
            maybe_die(plan_for(*trial), run_id, step_id, try_number, "after_decision")
        return result

    return decision


if not getattr(Recorder, "_kill_points_wrapped", False):
    Recorder.step = _wrap_step(Recorder.step)  # type: ignore[method-assign]
    Recorder.task_started = _wrap_task_started(Recorder.task_started)  # type: ignore[method-assign]
    Recorder.decision = _wrap_decision(Recorder.decision)  # type: ignore[method-assign]
    AuditLog.append = _wrap_append(AuditLog.append)  # type: ignore[method-assign]
    Recorder._kill_points_wrapped = True  # type: ignore[attr-defined]


def _saga(dag_id: str, *, with_gate: bool) -> DAG:
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["wfe"],
        max_active_runs=64,
        default_args={"retries": 3, "retry_delay": timedelta(seconds=1)},
    ) as dag:

        @task
        def reserve(**context: Any) -> dict[str, str]:
            return _forward("reserve", context)

        @task
        def charge(booking: dict[str, str], **context: Any) -> dict[str, str]:
            return _forward("charge", context)

        booking = reserve()
        payment = charge(booking)
        if with_gate:

            @policy_gate(inline_policies=[RISK], step={"risk": "low"}, retries=3, task_id="gate")
            def gate(run_id: str, try_number: str) -> dict[str, Any]:
                plan = plan_for(*(parse_run_id(run_id) or ("", 0, 0)))
                _gate_try.value = int(try_number)
                note(run_id, "gate", int(try_number), "call")
                maybe_die(plan, run_id, "gate", int(try_number), "before_decision")
                return {}

            booking >> gate(run_id="{{ run_id }}", try_number="{{ ti.try_number }}") >> payment
        compensate(booking, release, retries=3, retry_delay=timedelta(seconds=1))
    return dag


saga = _saga(DAG_ID, with_gate=False)
gated_saga = _saga(GATE_DAG_ID, with_gate=True)
