"""A task's start costs one store write when the scheduler has started its run (issue #15).

Under a scheduler every task process is a fresh fork that remembers no run, and the run is already
RUNNING (the scheduler's DAG-run hook ran its pre-flight). The task's first hook used to write twice
there: a run-start check that found nothing to do, then the step's RUNNING. It now writes both in
one transaction, with the same transitions and audit events as the two writes made; a run not
under way still gets its pre-flight (or its rejection) first.

What is counted is real: ``BEGIN IMMEDIATE`` statements traced on the SQLite store's connections
(``sqlite3``'s trace callback) while the listener's start hook runs in a real ``dag.test()``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from airflow_wfe.adapters.listeners import listener as listener_module
from airflow_wfe.adapters.listeners import scope
from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.core.metrics.emitter import NullEmitter
from airflow_wfe.core.records import Move
from airflow_wfe.core.states import RunState, StepState
from airflow_wfe.engine.harness import get_runtime_store, reset_runtime
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import StoreUnavailableError
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import get_engine

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

DAG_ID = "wfe_example_success"
FACTS: dict[str, str | None] = {"run_type": "manual", "dag_version_id": "v1"}


@dataclass
class Trace:
    """The SQL statements run on the store's connections, in order."""

    statements: list[str]

    def writes(self) -> int:
        return sum(1 for s in self.statements if s.strip().upper() == "BEGIN IMMEDIATE")


@pytest.fixture
def traced_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """The configured store: a SQLite file whose every connection reports its statements."""
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", url)
    monkeypatch.setenv("AIRFLOW__WFE__SPOOL_PATH", str(tmp_path / "spool"))
    monkeypatch.setenv("AIRFLOW__WFE__AUDIT_SIGNING_KEY", "wfe-task-start-test-key")
    reset_runtime()
    trace = Trace([])
    engine = get_engine(url)
    engine.dispose()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(trace.statements.append)

    event.listen(engine, "connect", on_connect)
    get_runtime_store().count_runs()  # the schema, before anything is counted
    yield trace
    event.remove(engine, "connect", on_connect)


def _spy_task_starts(
    monkeypatch: pytest.MonkeyPatch, trace: Trace, before_each: Callable[[Any], None]
) -> dict[str, int]:
    """Wrap the listener's start hook: ``before_each(ti)``, then count its store writes."""
    real = listener_module.WfeListener._task_running
    writes: dict[str, int] = {}

    def counted(ti: Any) -> None:
        before_each(ti)
        scope._running_runs.clear()  # a forked task process remembers no run
        start = trace.writes()
        real(ti)
        writes[ti.task_id] = trace.writes() - start

    monkeypatch.setattr(listener_module.WfeListener, "_task_running", staticmethod(counted))
    return writes


def _scheduler_started(ti: Any, started: set[str]) -> None:
    """What the scheduler's ``on_dag_run_running`` writes (its own process, its own recorder)
    before the run's first task starts: the run's pre-flight, CREATED → VALIDATED → RUNNING."""
    if ti.run_id in started:
        return
    started.add(ti.run_id)
    from airflow_wfe.adapters.listeners.preflight import candidate_of_task, preflight

    scheduler = Recorder(get_runtime_store(), NullEmitter())
    scheduler.run_preflight(
        ti.dag_id,
        ti.run_id,
        preflight(scheduler, candidate_of_task(ti)),
        actor="scheduler",
        reason="scheduler started the run",
        facts={"run_type": "manual", "dag_version_id": str(ti.dag_version_id)},
    )


def _assert_completed_and_verified(dag_run: Any) -> None:
    store = get_runtime_store()
    record = store.get_run(dag_run.dag_id, dag_run.run_id)
    assert record.state == "COMPLETED"
    assert [t.to_state for t in record.transitions] == [
        "CREATED",
        "VALIDATED",
        "RUNNING",
        "COMPLETED",
    ]
    for step in record.steps:
        assert [(t.to_state, t.actor) for t in step.transitions] == [
            ("PENDING", "worker"),
            ("RUNNING", "worker"),
            ("SUCCEEDED", "worker"),
        ]
    report = store.verify_audit(store.audit.signer)
    assert report.ok, report


def test_a_task_of_a_scheduler_started_run_starts_in_one_write(
    dagbag: Any, traced_store: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: set[str] = set()
    writes = _spy_task_starts(monkeypatch, traced_store, lambda ti: _scheduler_started(ti, started))

    dag_run = dagbag.get_dag(DAG_ID).test()

    assert dag_run.state == "success"
    assert writes, "no governed task started"
    assert writes == dict.fromkeys(writes, 1), writes  # two each before (check + step)
    _assert_completed_and_verified(dag_run)
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    assert [t.actor for t in record.transitions[:3]] == ["scheduler"] * 3


def test_a_run_no_one_started_gets_its_preflight_at_its_first_task(
    dagbag: Any, traced_store: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dags test`` fires no DAG-run hook: the first task finds no run, so the one write cannot
    carry its step; it records the run CREATED, runs the pre-flight, then the step (three writes,
    as before). Every later task finds the run RUNNING: one write."""
    writes = _spy_task_starts(monkeypatch, traced_store, lambda ti: None)

    dag_run = dagbag.get_dag(DAG_ID).test()

    assert dag_run.state == "success"
    first, *later = writes.values()
    assert first == 3, writes
    assert later, writes
    assert later == [1] * len(later), writes
    _assert_completed_and_verified(dag_run)
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    assert [t.actor for t in record.transitions[:3]] == ["worker"] * 3
    assert (record.transitions[1].reason or "").startswith("pre-flight passed")


# -- the one write records what the two wrote -----------------------------------------------------


def _prepare(recorder: Recorder, run_id: str, setup: str) -> None:
    """Bring the run (and step ``t``) where a task may find them when it starts."""
    store = recorder.store
    facts = None if setup == "missing facts" else FACTS
    pending = setup in ("validated", "created")
    recorder.run_started("d", run_id, actor="scheduler", reason="start", facts=facts,
                         preflight_pending=pending)  # fmt: skip
    if setup == "validated":
        store.advance_run(
            "d", run_id, lambda _s: [Move(RunState.VALIDATED, "checked")], actor="scheduler"
        )
    if setup == "waiting approval":
        recorder.transition_run("d", run_id, RunState.WAITING_APPROVAL, actor="gate", reason="ask")
    if setup == "retry":
        recorder.step("d", run_id, "t", StepState.RUNNING, actor="worker", try_number=1)


def _history(store: SqlStore, run_id: str) -> tuple[list[Any], list[Any]]:
    """The run's transitions and audit events without what differs between two runs (times,
    hashes, the run id)."""
    record = store.get_run("d", run_id)
    moves: list[Any] = [
        (None, t.from_state, t.to_state, t.actor, t.reason) for t in record.transitions
    ]
    for step in record.steps:
        moves += [
            (step.step_id, t.from_state, t.to_state, t.actor, t.reason, t.try_number)
            for t in step.transitions
        ]
    events = []
    for sealed in store.audit_events(dag_id="d", run_id=run_id):
        body = sealed.content()
        body = {k: v for k, v in body.items() if k not in ("at", "run_id", "prev", "seq")}
        events.append((sealed.type, sealed.actor, sealed.step_id, body))
    facts = {k: getattr(record, k, None) for k in ("run_type", "dag_version_id")}
    return [*moves, facts], events


@pytest.mark.parametrize(
    "setup", ["running", "missing facts", "validated", "waiting approval", "retry", "created"]
)
def test_the_one_write_records_what_the_two_wrote(store_url: str, setup: str) -> None:
    signer = HmacSigner(b"wfe-task-start-test-key")
    store = SqlStore(store_url, audit=AuditLog(signer=signer))
    recorder = Recorder(store, NullEmitter())
    for run_id in ("two", "one"):
        _prepare(recorder, run_id, setup)
    try_number = 2 if setup == "retry" else 1
    step: dict[str, Any] = {"actor": "worker", "map_index": -1, "try_number": try_number}

    # Before: the run-start check, then the step, each in its own transaction.
    before = recorder.start_run("d", "two", actor="worker", reason="task t started", facts=FACTS,
                                preflight_pending=True)  # fmt: skip
    if before.state not in (RunState.CREATED, RunState.REJECTED):
        recorder.step("d", "two", "t", StepState.RUNNING, reason="task started", **step)
    # Now: both in one.
    now = recorder.task_started(
        "d", "one", "t", run_reason="task t started", step_reason="task started", facts=FACTS,
        **step,
    )  # fmt: skip

    assert _history(store, "one") == _history(store, "two")
    assert (now.run.state, now.run.known) == (before.state, before.known)
    if setup == "created":
        assert now.step is None  # the caller runs the pre-flight, then reports the step
    else:
        assert now.step
        assert now.step[-1].to_state == StepState.RUNNING
    assert store.verify_audit(signer).ok


# -- a store that cannot take the one write --------------------------------------------------------


@pytest.fixture
def locked_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A SQLite store holding a RUNNING run, its write lock taken by another connection."""
    path = tmp_path / "wfe.db"
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{path}")
    monkeypatch.setenv("AIRFLOW__WFE__SPOOL_PATH", str(tmp_path / "spool"))
    monkeypatch.setenv("AIRFLOW__WFE__AUDIT_SIGNING_KEY", "wfe-task-start-test-key")
    monkeypatch.setenv("AIRFLOW__WFE__STORE_LOCK_TIMEOUT", "1")
    reset_runtime()
    Recorder(get_runtime_store(), NullEmitter()).run_started(
        "d", "r", actor="scheduler", reason="scheduler started the run", facts=FACTS
    )
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield tmp_path / "spool", holder
    holder.close()


def _task_starts(recorder: Recorder) -> None:
    scope._running_runs.clear()  # a forked task process remembers no run
    scope.start_task(
        recorder,
        "d",
        "r",
        "t",
        actor="worker",
        run_reason="task t started",
        step_reason="task started",
        facts=FACTS,
        candidate=lambda: pytest.fail("a RUNNING run needs no pre-flight"),
        try_number=1,
    )


def test_a_locked_store_spools_both_facts_in_order_and_a_flush_writes_them_once(
    locked_store: tuple[Path, sqlite3.Connection],
) -> None:
    from airflow_wfe.engine.harness import get_recorder

    spool, holder = locked_store
    recorder = get_recorder()

    _task_starts(recorder)

    (spooled,) = spool.glob("*.jsonl")
    entries = [json.loads(line) for line in spooled.read_text().splitlines()]
    # The same two entries, in the same order, as the two writes of before spooled.
    assert [e["op"] for e in entries] == ["run_started", "step"]
    assert entries[0]["args"]["preflight_pending"] is True
    assert entries[1]["args"]["to_state"] == "RUNNING"
    holder.rollback()
    result = recorder.flush_spool()
    assert result.complete, result
    assert (result.replayed, result.rejected) == (2, 0)
    assert recorder.flush_spool().replayed == 0  # nothing is written twice
    record = get_runtime_store().get_run("d", "r")
    assert [t.to_state for t in record.transitions] == ["CREATED", "VALIDATED", "RUNNING"]
    (step,) = record.steps
    assert [(t.to_state, t.actor) for t in step.transitions] == [
        ("PENDING", "worker"),
        ("RUNNING", "worker"),
    ]
    store = get_runtime_store()
    assert store.verify_audit(store.audit.signer).ok


def test_fail_closed_raises_and_spools_nothing(
    locked_store: tuple[Path, sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_wfe.engine.harness import get_recorder

    spool, holder = locked_store
    monkeypatch.setenv("AIRFLOW__WFE__FAIL_CLOSED", "True")
    reset_runtime()

    with pytest.raises(StoreUnavailableError):
        _task_starts(get_recorder())

    assert list(spool.glob("*.jsonl")) == []
    holder.rollback()
    assert get_runtime_store().get_run("d", "r").steps == ()
