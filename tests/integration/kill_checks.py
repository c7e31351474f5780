"""What every kill-point trial must end with, checked from the store, Airflow and the effects ledger.

Used by ``test_kill_points.py``. One trial is one run of ``wfe_kill_points``
(``tests/scenarios/kill_points``); :func:`problems` lists everything wrong with it (empty: the
trial passed), so one report names every broken trial with its plan and seed.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_wfe.adapters.saga.tasks import idempotency_key
from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE, RunState, StepState
from airflow_wfe.exceptions import IllegalTransitionError

#: Steps with a side effect (``charge`` is the last step: nothing after it can fail, so only
#: ``reserve`` has a compensation).
EFFECT_STEPS = ("reserve", "charge")


def ledger_rows(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every ``calls`` and ``effects`` row of the effects ledger (none while it does not exist)."""
    if not path.is_file():
        return [], []
    connection = sqlite3.connect(path, timeout=60)
    connection.row_factory = sqlite3.Row
    try:
        calls = [dict(row) for row in connection.execute("SELECT * FROM calls ORDER BY at")]
        effects = [dict(row) for row in connection.execute("SELECT * FROM effects ORDER BY at")]
    finally:
        connection.close()
    return calls, effects


def _walk(
    name: str, transitions: list[Mapping[str, Any]], machine: Any, state_type: Any
) -> list[str]:
    """Gaps (a move that does not start where the last one ended), illegal moves, duplicates."""
    found = []
    current = None
    seen: Counter[tuple[Any, ...]] = Counter()
    for t in transitions:
        seen[(t["from_state"], t["to_state"], t.get("try_number"))] += 1
        if t["from_state"] != current:
            found.append(f"{name}: gap, {t['from_state']} -> {t['to_state']} after {current}")
        try:
            machine.check(
                name, None if current is None else state_type(current), state_type(t["to_state"])
            )
        except IllegalTransitionError as exc:
            found.append(f"{name}: illegal move recorded: {exc}")
        current = t["to_state"]
    found += [f"{name}: transition recorded {n} times: {k}" for k, n in seen.items() if n > 1]
    return found


def expected_run_path(plan: Mapping[str, Any]) -> list[str]:
    if plan["fail"]:
        return ["CREATED", "VALIDATED", "RUNNING", "FAILED", "COMPENSATING", "COMPENSATED"]
    return ["CREATED", "VALIDATED", "RUNNING", "COMPLETED"]


def expected_steps(plan: Mapping[str, Any]) -> dict[str, str]:
    if plan["fail"]:
        steps = {"reserve": "COMPENSATED", "gate": "SUCCEEDED", "charge": "FAILED"}
    else:
        steps = {"reserve": "SUCCEEDED", "gate": "SUCCEEDED", "charge": "SUCCEEDED"}
    if plan["point"].startswith("gate_"):
        return steps
    return {step: state for step, state in steps.items() if step != "gate"}


def planned_deaths(plan: Mapping[str, Any], calls: Iterable[Mapping[str, Any]]) -> list[str]:
    """A planned death that did not happen (the trial would prove nothing)."""
    kill = plan.get("kill")
    if kill is None:
        return []
    killed = [c for c in calls if c["phase"].startswith("killed:")]
    if not killed:
        return [f"the planned SIGKILL never happened: {kill}"]
    return []


def problems(
    plan: Mapping[str, Any],
    record: Mapping[str, Any] | None,
    airflow_state: str | None,
    calls: list[Mapping[str, Any]],
    effects: list[Mapping[str, Any]],
) -> list[str]:
    """Everything wrong with one trial (empty: it passed)."""
    found: list[str] = []
    want_airflow = "failed" if plan["fail"] else "success"
    if airflow_state != want_airflow:
        found.append(f"Airflow's run is {airflow_state}, expected {want_airflow}")
    found += planned_deaths(plan, calls)
    if record is None:
        found.append("the store has no record of the run")
    else:
        found += history_problems(plan, record)
    return found + effect_problems(plan, calls, effects)


def history_problems(plan: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """The run's and each step's history: the expected path, no gap, no duplicate, legal moves."""
    found: list[str] = []
    moves = [t["to_state"] for t in record["transitions"]]
    path = expected_run_path(plan)
    if record["state"] != path[-1] or moves != path:
        found.append(f"run went {moves} (state {record['state']}), expected {path}")
    found += _walk("run", record["transitions"], RUN_MACHINE, RunState)
    steps = {s["step_id"]: s for s in record["steps"] if s["map_index"] == -1}
    for step_id, want in expected_steps(plan).items():
        step = steps.get(step_id)
        if step is None:
            found.append(f"step {step_id} not recorded")
            continue
        if step["state"] != want:
            found.append(f"step {step_id} is {step['state']}, expected {want}")
        found += _walk(f"step {step_id}", step["transitions"], STEP_MACHINE, StepState)
        to_states = [t["to_state"] for t in step["transitions"]]
        found += [
            f"step {step_id} entered {once} {to_states.count(once)} times"
            for once in ("PENDING", "SUCCEEDED", "COMPENSATING", "COMPENSATED", "FAILED")
            if to_states.count(once) > 1
        ]
        tries = [t["try_number"] for t in step["transitions"] if t["to_state"] == "RUNNING"]
        if tries != sorted(tries) or len(tries) != len(set(tries)):
            found.append(f"step {step_id} RUNNING tries out of order or repeated: {tries}")
    return found


def effect_problems(
    plan: Mapping[str, Any], calls: list[Mapping[str, Any]], effects: list[Mapping[str, Any]]
) -> list[str]:
    """Each succeeded step's effect applied once; ``reserve``'s compensation applied exactly once
    (when the run failed) with the saga's idempotency key, every call of it with that key."""
    found: list[str] = []
    run_id = f"kp__{plan['point']}__{plan['trial']:02d}__{plan['seed']}"
    done = Counter((e["step"], e["kind"]) for e in effects)
    for step_id in EFFECT_STEPS:
        want = 0 if plan["fail"] and step_id == "charge" else 1
        if done[(step_id, "do")] != want:
            found.append(f"{step_id}'s effect applied {done[(step_id, 'do')]} times, not {want}")
    key = idempotency_key(plan["dag_id"], run_id, "reserve", -1)
    undone = [e for e in effects if e["kind"] == "undo"]
    want_undo = 1 if plan["fail"] else 0
    if len(undone) != want_undo:
        found.append(f"compensations applied {len(undone)} times, expected {want_undo}")
    if any((e["step"], e["key"]) != ("reserve", key) for e in undone):
        found.append(
            f"compensation applied as {[(e['step'], e['key']) for e in undone]}, not {key}"
        )
    keys = {c["key"] for c in calls if c["task"] == "compensate__reserve" and c["phase"] == "call"}
    if keys - {key}:
        found.append(f"compensate__reserve was called with other keys: {sorted(keys - {key})}")
    return found
