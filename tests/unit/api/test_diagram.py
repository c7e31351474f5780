"""The geometry of a run's pictures: the state machine with its path, and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from airflow_wfe.app.models import Finding, RunDetail, StepDetail, Transition, VerifyReport
from airflow_wfe.core.states import RUN_MACHINE, RunState
from airflow_wfe.ui.diagram import chain_strip, run_machine, timeline

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SAGA = ["CREATED", "VALIDATED", "RUNNING", "FAILED", "COMPENSATING", "COMPENSATED"]


def _path(states: list[str], every_s: float = 10.0) -> list[Transition]:
    return [
        Transition(
            from_state=before,
            to_state=after,
            at=T0 + timedelta(seconds=i * every_s),
            actor="scheduler",
            reason=None,
            try_number=None,
        )
        for i, (before, after) in enumerate(zip([None, *states], states, strict=False))
    ]


def test_every_state_and_every_legal_move_is_drawn() -> None:
    machine = run_machine([], "CREATED")
    assert {n.state for n in machine.nodes} == {s.value for s in RunState}
    drawn = {(e.source, e.target) for e in machine.edges}
    legal = {(s, t) for s in RunState for t in RUN_MACHINE.allowed(s)}
    assert drawn == legal
    assert {(e.source, e.target) for e in machine.edges if e.manual} == set(RUN_MACHINE.manual)
    for node in machine.nodes:
        assert node.x >= 0
        assert node.y >= 0
        assert node.x + node.width <= machine.width
        assert node.y + node.height <= machine.height
    boxes = {(n.x, n.y) for n in machine.nodes}
    assert len(boxes) == len(machine.nodes), "no two states share a place"


def test_the_path_taken_is_marked() -> None:
    machine = run_machine(_path(SAGA), "COMPENSATED")
    taken = {(e.source, e.target) for e in machine.edges if e.taken}
    assert taken == set(pairwise(SAGA))
    visited = {n.state for n in machine.nodes if n.visited}
    assert visited == set(SAGA)
    assert [n.state for n in machine.nodes if n.current] == ["COMPENSATED"]


def test_opposite_moves_are_two_parallel_arrows() -> None:
    edges = {(e.source, e.target): e for e in run_machine([], "RUNNING").edges}
    there, back = edges[("RUNNING", "WAITING_APPROVAL")], edges[("WAITING_APPROVAL", "RUNNING")]
    assert (there.x1, there.y1) != (back.x2, back.y2)


def test_the_timeline_puts_each_state_on_one_time_axis() -> None:
    step = StepDetail(
        step_id="charge",
        map_index=-1,
        state="SUCCEEDED",
        try_number=1,
        created_at=T0,
        updated_at=T0,
        transitions=_path(["PENDING", "RUNNING", "SUCCEEDED"], every_s=5.0),
    )
    run = RunDetail(
        dag_id="d",
        run_id="r",
        state="COMPLETED",
        run_type="manual",
        dag_version_id=None,
        created_at=T0,
        updated_at=T0,
        spec_version=None,
        spec_hash=None,
        transitions=_path(["CREATED", "VALIDATED", "RUNNING", "COMPLETED"], every_s=10.0),
        steps=[step],
        compensations=[],
        decisions=[],
    )
    drawn = timeline(run)
    assert [row.label for row in drawn.rows] == ["run", "charge"]
    assert drawn.start == T0
    assert drawn.end == T0 + timedelta(seconds=30)
    run_bars = drawn.rows[0].bars
    assert [b.state for b in run_bars] == ["CREATED", "VALIDATED", "RUNNING", "COMPLETED"]
    assert run_bars[1].x == drawn.width / 3
    assert drawn.rows[1].bars[-1].end is None


def _report(first: int | None, last: int | None, findings: list[Finding]) -> VerifyReport:
    return VerifyReport(
        ok=not findings,
        events=0 if first is None or last is None else last - first + 1,
        first_seq=first,
        last_seq=last,
        checkpoints=0,
        signatures_checked=True,
        findings=findings,
        notes=[],
    )


def test_the_chain_strip_marks_each_finding_where_it_sits() -> None:
    findings = [
        Finding(seq=101, kind="edited", message="x"),
        Finding(seq=None, kind="head", message="y"),
        Finding(seq=200, kind="deleted", message="z"),
    ]
    strip = chain_strip(_report(100, 200, findings))
    assert not strip.ok
    assert [(m.seq, m.kind) for m in strip.marks] == [(101, "edited"), (200, "deleted")]
    assert strip.marks[0].x == strip.width / 100
    assert strip.marks[1].x == strip.width
    assert chain_strip(_report(None, None, [])).marks == []
    assert chain_strip(_report(5, 5, [Finding(seq=5, kind="edited", message="")])).marks[0].x == 0
