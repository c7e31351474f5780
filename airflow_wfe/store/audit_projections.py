"""Verification's replay: the state tables must be what the trail says happened.

The trail is signed; the state tables (runs, steps, transitions, decisions, costs) are what
``wfe runs list`` and the pages show, and anyone with write access can edit them without touching the
chain. Replaying the events gives each run's and step's last state and how many transitions,
decisions and cost entries each run had; the first row that disagrees is named. Runs whose early
events are archived out of the store are compared only on what the store still holds, so the replay
runs only on a trail without archives (and says so otherwise).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from airflow_wfe.core.audit.events import EventType, parse_body
from airflow_wfe.core.audit.verify import Finding, VerifyReport
from airflow_wfe.store.tables import (
    audit_event_table,
    cost_entry_table,
    decision_table,
    run_table,
    step_table,
    transition_table,
)

__all__ = ["check_projections"]

_RUN = str(EventType.RUN_TRANSITION)
_STEP = str(EventType.STEP_TRANSITION)
_DECISIONS = (str(EventType.POLICY_DECISION), str(EventType.APPROVAL))
_COST = str(EventType.COST)


@dataclass
class _Replay:
    """What the trail says: last states (with the event that set them) and counts per run."""

    runs: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    steps: dict[tuple[str, str, str, int], tuple[int, str]] = field(default_factory=dict)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    costs: Counter[tuple[str, str]] = field(default_factory=Counter)

    def feed(
        self, seq: int, type_: str, run: tuple[str, str], step_id: str | None, body: str
    ) -> None:
        if type_ == _COST:
            self.costs[run] += 1
            return
        if type_ in _DECISIONS:
            self.decisions[run] += 1
            return
        try:
            data = parse_body(body)
        except ValueError:
            return  # the chain check names it
        to_state = (data.get("payload") or {}).get("to_state")
        if to_state is None:
            return
        self.transitions[run] += 1
        if type_ == _RUN:
            self.runs[run] = (seq, str(to_state))
        elif step_id is not None:
            index = data.get("map_index")
            key = (run[0], run[1], step_id, -1 if index is None else int(index))
            self.steps[key] = (seq, str(to_state))


def _replay(connection: Connection) -> _Replay:
    replay = _Replay()
    rows = connection.execute(
        select(
            audit_event_table.c.seq,
            audit_event_table.c.type,
            audit_event_table.c.dag_id,
            audit_event_table.c.run_id,
            audit_event_table.c.step_id,
            audit_event_table.c.body,
        )
        .where(audit_event_table.c.type.in_((_RUN, _STEP, _COST, *_DECISIONS)))
        .order_by(audit_event_table.c.seq)
    )
    for seq, type_, dag_id, run_id, step_id, body in rows:
        if dag_id is not None and run_id is not None:
            replay.feed(int(seq), type_, (dag_id, run_id), step_id, body)
    return replay


def _run_problems(connection: Connection, replay: _Replay) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    stored = {
        (r.dag_id, r.run_id): r
        for r in connection.execute(
            select(run_table.c.id, run_table.c.dag_id, run_table.c.run_id, run_table.c.state)
        )
    }
    for run, (seq, state) in replay.runs.items():
        row = stored.get(run)
        if row is None:
            problems.append((seq, f"run {run[0]}/{run[1]} is in the trail but not in wfe_run"))
        elif row.state != state:
            problems.append(
                (
                    seq,
                    f"wfe_run {run[0]}/{run[1]} (id {row.id}) says state {row.state!r}, the "
                    f"trail's last transition (#{seq}) says {state!r}",
                )
            )
    problems += [
        (0, f"wfe_run {run[0]}/{run[1]} (id {row.id}) has no event in the trail")
        for run, row in stored.items()
        if run not in replay.runs
    ]
    return problems


def _step_problems(connection: Connection, replay: _Replay) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    steps = connection.execute(
        select(
            run_table.c.dag_id,
            run_table.c.run_id,
            step_table.c.id,
            step_table.c.step_id,
            step_table.c.map_index,
            step_table.c.state,
        ).join(run_table, step_table.c.run_pk == run_table.c.id)
    )
    for dag_id, run_id, pk, step_id, map_index, state in steps:
        name = f"wfe_step {dag_id}/{run_id}/{step_id}[{map_index}] (id {pk})"
        found = replay.steps.get((dag_id, run_id, step_id, int(map_index)))
        if found is None:
            problems.append((0, f"{name} has no event in the trail"))
        elif found[1] != state:
            problems.append(
                (
                    found[0],
                    f"{name} says state {state!r}, the trail's last transition (#{found[0]}) "
                    f"says {found[1]!r}",
                )
            )
    return problems


def _count_problems(connection: Connection, replay: _Replay) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    for table, expected, what in (
        (transition_table, replay.transitions, "wfe_transition rows"),
        (decision_table, replay.decisions, "wfe_decision rows"),
        (cost_entry_table, replay.costs, "wfe_cost_entry rows"),
    ):
        counted = _count_by_run(connection, table)
        problems += [
            (
                0,
                f"run {run[0]}/{run[1]} has {counted.get(run, 0)} {what}, the trail "
                f"{expected.get(run, 0)}",
            )
            for run in sorted(set(counted) | set(expected))
            if counted.get(run, 0) != expected.get(run, 0)
        ]
    return problems


def check_projections(connection: Connection, report: VerifyReport) -> None:
    """Replay the trail's events and add a ``projection`` finding for the first state row that
    disagrees with them (run state, step state, transition, decision and cost entry counts)."""
    replay = _replay(connection)
    problems = (
        _run_problems(connection, replay)
        + _step_problems(connection, replay)
        + _count_problems(connection, replay)
    )
    if not problems:
        report.notes.append("state tables (runs, steps, transitions, decisions, costs) replayed")
        return
    seq, message = min(problems, key=lambda p: (p[0] == 0, p[0]))
    report.findings.append(Finding(seq or None, "projection", message))
    if len(problems) > 1:
        report.notes.append(f"{len(problems) - 1} more state row(s) disagree with the trail")


def _count_by_run(connection: Connection, table: Any) -> dict[tuple[str, str], int]:
    rows = connection.execute(
        select(run_table.c.dag_id, run_table.c.run_id, func.count())
        .select_from(table.join(run_table, table.c.run_pk == run_table.c.id))
        .group_by(run_table.c.dag_id, run_table.c.run_id)
    )
    return {(d, r): int(n) for d, r, n in rows}
