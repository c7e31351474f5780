"""Facts written with the run move they cause, in one transaction: gate decisions, manual
compensation requests, imports from Airflow's log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.records import Move
from airflow_wfe.core.states import RunState
from airflow_wfe.engine.gate_decisions import GateContext
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import IllegalTransitionError, RunNotFoundError
from airflow_wfe.store import SqlStore
from airflow_wfe.store.run_writes import RunWrites
from airflow_wfe.store.tables import compensation_request_table, decision_table

R = RunState
DENY = {"kind": "policy", "outcome": "deny", "reasons": [{"message": "no"}], "policies": {}}


@pytest.fixture
def recorder(store: SqlStore) -> Recorder:
    recorder = Recorder(store, NullEmitter())
    recorder.run_started("deploy", "r1", actor="scheduler", reason="started")
    return recorder


def count(store: SqlStore, table: Any) -> int:
    with store._engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def event_types(store: SqlStore) -> list[str]:
    return [e.type for e in store.audit_events(dag_id="deploy", run_id="r1")]


def to(state: RunState, reason: str = "why") -> Any:
    return lambda current: [] if current is state else [Move(state, reason)]


# -- a decision and the run move it causes --------------------------------------------------------


def test_decision_and_move_are_written_together(store: SqlStore, recorder: Recorder) -> None:
    record, written = store.record_decision_and_advance(
        "deploy", "r1", "gate", actor="gate:gate", run_plan=to(R.REJECTED, "denied"), **DENY
    )
    assert record.outcome == "deny"
    assert [(t.from_state, t.to_state, t.actor) for t in written] == [
        ("RUNNING", "REJECTED", "gate:gate")
    ]
    assert store.get_run("deploy", "r1").state == "REJECTED"
    assert [d.outcome for d in store.decisions("deploy", "r1")] == ["deny"]
    # The decision's event first, then the move it caused: the order an auditor reads.
    assert event_types(store)[-2:] == [EventType.POLICY_DECISION, EventType.RUN_TRANSITION]


def test_an_illegal_move_writes_no_decision(store: SqlStore, recorder: Recorder) -> None:
    recorder.run_finished("deploy", "r1", succeeded=True, actor="scheduler", reason="done")
    before = event_types(store)
    with pytest.raises(IllegalTransitionError):
        store.record_decision_and_advance(
            "deploy", "r1", "gate", actor="gate:gate", run_plan=to(R.WAITING_APPROVAL), **DENY
        )
    assert count(store, decision_table) == 0
    assert store.get_run("deploy", "r1").state == "COMPLETED"
    assert event_types(store) == [*before, EventType.TRANSITION_REFUSED]


def test_a_fault_between_decision_and_move_leaves_neither(
    store: SqlStore, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision row is inserted before the run's move is applied; a crash in between must roll
    the decision back with it."""
    before = event_types(store)

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("worker died mid-transaction")

    monkeypatch.setattr(RunWrites, "_apply_run", crash)
    with pytest.raises(RuntimeError, match="mid-transaction"):
        store.record_decision_and_advance(
            "deploy", "r1", "gate", actor="gate:gate", run_plan=to(R.REJECTED), **DENY
        )
    assert count(store, decision_table) == 0
    assert store.get_run("deploy", "r1").state == "RUNNING"
    assert event_types(store) == before


def test_a_decision_for_an_unknown_run_writes_nothing(store: SqlStore) -> None:
    with pytest.raises(RunNotFoundError):
        store.record_decision_and_advance(
            "deploy", "nope", "gate", actor="g", run_plan=to(R.REJECTED), **DENY
        )
    assert count(store, decision_table) == 0


def test_an_empty_plan_records_the_decision_alone(store: SqlStore, recorder: Recorder) -> None:
    _record, written = recorder.decision(
        "deploy", "r1", "gate", actor="gate:gate", move_to=R.RUNNING, reason="x", **DENY
    )
    assert written == []
    assert len(store.decisions("deploy", "r1")) == 1


def test_a_gate_keeps_its_decision_when_the_run_cannot_move(
    store: SqlStore, recorder: Recorder
) -> None:
    """The run was failed by hand meanwhile: the refused move is audited, the decision stands."""
    recorder.run_finished("deploy", "r1", succeeded=False, actor="user:ann", reason="by hand")
    gate = GateContext("deploy", "r1", "gate", recorder)
    gate.record(move_to=R.REJECTED, reason="denied", **DENY)
    assert [d.outcome for d in store.decisions("deploy", "r1")] == ["deny"]
    assert store.get_run("deploy", "r1").state == "FAILED"
    assert event_types(store)[-2:] == [EventType.TRANSITION_REFUSED, EventType.POLICY_DECISION]


# -- manual compensation requests -------------------------------------------------------------------


def test_a_compensation_request_is_a_fact_until_the_run_moves_on(
    store: SqlStore, recorder: Recorder
) -> None:
    recorder.run_finished("deploy", "r1", succeeded=False, actor="scheduler", reason="failed")
    assert store.open_compensation_request("deploy", "r1") is None
    request, written = recorder.request_compensation(
        "deploy", "r1", actor="user:ann", reason="requested by ann", force=False, note="undo it"
    )
    assert [(t.from_state, t.to_state) for t in written] == [("FAILED", "COMPENSATING")]
    assert (request.actor, request.force, request.reason) == ("user:ann", False, "undo it")
    found = store.open_compensation_request("deploy", "r1")
    assert found is not None
    assert (found.actor, found.force, found.reason) == ("user:ann", False, "undo it")
    assert found.at == written[-1].at
    recorder.saga_finished("deploy", "r1", succeeded=True, reason="undone", actor="saga")
    assert store.open_compensation_request("deploy", "r1") is None


def test_a_failures_compensation_is_not_a_manual_request(
    store: SqlStore, recorder: Recorder
) -> None:
    # The reason even reads like a request: only the stored fact counts, never the text.
    recorder.saga_started(
        "deploy",
        "r1",
        failed=["a"],
        compensating=["manual compensation requested by user:x"],
        irreversible=[],
        actor="saga",
    )
    assert store.get_run("deploy", "r1").state == "COMPENSATING"
    assert store.open_compensation_request("deploy", "r1") is None


def test_a_refused_request_is_not_written(store: SqlStore, recorder: Recorder) -> None:
    with pytest.raises(IllegalTransitionError):  # RUNNING cannot go COMPENSATING
        recorder.request_compensation("deploy", "r1", actor="user:ann", reason="now")
    assert count(store, compensation_request_table) == 0
    assert store.open_compensation_request("deploy", "r1") is None
    assert event_types(store)[-1] == EventType.TRANSITION_REFUSED


# -- lookups and imports that adapters used to run as SQL of their own -----------------------------


def test_governed_dag_ids_and_run_states(store: SqlStore, recorder: Recorder) -> None:
    assert store.governed_dag_ids({"deploy", "other"}) == {"deploy"}
    assert store.governed_dag_ids(set()) == set()
    assert store.run_states({("deploy", "r1"), ("deploy", "r2")}) == {("deploy", "r1"): "RUNNING"}
    assert store.run_states(set()) == {}


def test_import_moves_the_cursor_with_the_events_once(store: SqlStore) -> None:
    event = AuditEvent(
        type=EventType.AIRFLOW_CHANGE, actor="user:ann", at=datetime.now(UTC), payload={"x": 1}
    )
    assert store.sync_position("airflow.log") == 0
    assert store.import_events("airflow.log", start=0, position=7, events=[event]) == 1
    assert store.sync_position("airflow.log") == 7
    # A second importer that read the cursor before the first one moved it writes nothing.
    assert store.import_events("airflow.log", start=0, position=7, events=[event]) == 0
    assert store.import_events("airflow.log", start=7, position=9, events=[event, event]) == 2
    assert store.sync_position("airflow.log") == 9
    assert [e.type for e in store.audit_events()].count(EventType.AIRFLOW_CHANGE) == 3
