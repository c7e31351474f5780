"""What the recorder emits per transition: counters with tags, durations, compensation, no reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from airflow_wfe.core.metrics import NullEmitter, RecordingEmitter, names
from airflow_wfe.core.states import RunState, StepState
from airflow_wfe.engine import transition_metrics as transitions_module
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_run_and_step_metrics_of_a_run_with_a_retry(store: SqlStore) -> None:
    emitter = RecordingEmitter()
    recorder = Recorder(store, emitter)
    recorder.run_started("etl", "r1", actor="worker", reason="task a started", at=_s(0))
    recorder.step("etl", "r1", "a", StepState.RUNNING, actor="worker", try_number=1, at=_s(1))
    recorder.step("etl", "r1", "a", StepState.RETRYING, actor="worker", try_number=1, at=_s(3))
    recorder.step("etl", "r1", "a", StepState.RUNNING, actor="worker", try_number=2, at=_s(10))
    recorder.step("etl", "r1", "a", StepState.SUCCEEDED, actor="worker", try_number=2, at=_s(14))
    recorder.run_finished("etl", "r1", succeeded=True, actor="scheduler", reason="ok", at=_s(20))

    counters = [(name, tags) for kind, name, _, tags in emitter.sent if kind == "c"]
    assert ("wfe.run.state.created", {"dag_id": "etl"}) in counters
    assert ("wfe.run.state.completed", {"dag_id": "etl"}) in counters
    assert counters.count(("wfe.step.state.running", {"dag_id": "etl", "step": "a"})) == 2
    assert (names.STEP_RETRIES, {"dag_id": "etl", "step": "a"}) in counters
    timers = [(name, value) for kind, name, value, _ in emitter.sent if kind == "ms"]
    assert timers == [
        ("wfe.step.duration.retrying", 2000.0),
        ("wfe.step.duration.succeeded", 4000.0),
        ("wfe.run.duration.completed.etl", 20000.0),
    ]


def test_compensation_metrics(store: SqlStore) -> None:
    emitter = RecordingEmitter()
    recorder = Recorder(store, emitter)
    recorder.run_started("trip", "r1", actor="worker", reason="go", at=_s(0))
    recorder.step("trip", "r1", "pay", StepState.RUNNING, actor="worker", at=_s(1))
    recorder.step("trip", "r1", "pay", StepState.SUCCEEDED, actor="worker", at=_s(2))
    recorder.saga_started(
        "trip", "r1", failed=["hotel"], compensating=["pay"], irreversible=[], actor="worker"
    )
    recorder.step("trip", "r1", "pay", StepState.COMPENSATING, actor="worker")
    recorder.step("trip", "r1", "pay", StepState.COMPENSATED, actor="worker")
    recorder.saga_finished("trip", "r1", succeeded=True, reason="undone", actor="worker")

    sent = emitter.names()
    for name in (
        "wfe.run.state.failed",
        "wfe.run.state.compensating",
        "wfe.run.state.compensated",
        "wfe.compensation.run.started",
        "wfe.compensation.run.compensated",
        "wfe.compensation.step.started",
        "wfe.compensation.step.compensated",
        "wfe.compensation.duration.compensated",
        "wfe.run.duration.failed.trip",
        "wfe.run.duration.compensated.trip",
    ):
        assert name in sent, (name, sent)


def test_a_failed_undo_is_counted_as_failed(store: SqlStore) -> None:
    emitter = RecordingEmitter()
    recorder = Recorder(store, emitter)
    recorder.run_started("trip", "r1", actor="worker", reason="go")
    recorder.transition_run("trip", "r1", RunState.FAILED, actor="worker", reason="x")
    recorder.transition_run("trip", "r1", RunState.COMPENSATING, actor="worker", reason="x")
    recorder.transition_run("trip", "r1", RunState.COMPENSATION_FAILED, actor="worker", reason="x")
    assert "wfe.compensation.run.failed" in emitter.names("c")
    assert "wfe.compensation.duration.failed" in emitter.names("ms")


def test_step_transitions_never_read_the_store(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(store, RecordingEmitter())
    recorder.run_started("etl", "r1", actor="worker", reason="go")
    reads: list[str] = []
    real_read = SqlStore._read

    def counting_read(self: SqlStore):  # type: ignore[no-untyped-def]
        reads.append("read")
        return real_read(self)

    monkeypatch.setattr(SqlStore, "_read", counting_read)
    for state in (StepState.RUNNING, StepState.RETRYING, StepState.RUNNING, StepState.SUCCEEDED):
        recorder.step("etl", "r1", "a", state, actor="worker")
    assert reads == []


def test_a_null_emitter_costs_no_read_at_run_end(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(store, NullEmitter())
    recorder.run_started("etl", "r1", actor="worker", reason="go")
    called: list[str] = []
    monkeypatch.setattr(SqlStore, "run_created_at", lambda *a: called.append("x"))
    recorder.run_finished("etl", "r1", succeeded=True, actor="scheduler", reason="ok")
    assert called == []


def test_log_lines_are_logfmt(store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(store, NullEmitter())
    with caplog.at_level(logging.INFO, logger="airflow_wfe.engine.recorder"):
        recorder.run_started("etl", "r 1", actor="worker", reason="task a started")
        recorder.step("etl", "r 1", "a", StepState.RUNNING, actor="worker", try_number=1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        'wfe.run.transition dag_id=etl run_id="r 1" from_state="" to_state=CREATED actor=worker '
        'reason="run created"'
    )
    assert (
        'wfe.step.transition dag_id=etl run_id="r 1" step=a map_index=-1 from_state=PENDING '
        'to_state=RUNNING try_number=1 actor=worker reason=""'
    ) in lines


def test_an_emitter_that_raises_never_breaks_the_recorder(store: SqlStore) -> None:
    class Broken(RecordingEmitter):
        def incr(self, name: str, count: int = 1, *, tags: object = None) -> None:
            raise RuntimeError("boom")

    recorder = Recorder(store, Broken())
    assert recorder.run_started("etl", "r1", actor="worker", reason="go")
    assert recorder.step("etl", "r1", "a", StepState.RUNNING, actor="worker")


def test_deployment_patterns() -> None:
    from airflow_wfe.core.metrics.emitter import MetricsSettings

    settings = MetricsSettings(deployment_dags=("deploy_*", "release"))
    assert transitions_module.is_deployment(settings, "deploy_api")
    assert transitions_module.is_deployment(settings, "release")
    assert not transitions_module.is_deployment(settings, "release_2")
