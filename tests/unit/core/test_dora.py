"""DORA figures on a history built by hand through the recorder, checked against hand arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_wfe.core.metrics import RecordingEmitter, names
from airflow_wfe.core.metrics.dora import compute_dora
from airflow_wfe.core.metrics.emitter import MetricsSettings
from airflow_wfe.core.states import RunState
from airflow_wfe.engine.dora_metrics import dora_for
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAG = "deploy_api"


def _at(days_ago: float, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days_ago) + timedelta(hours=hours)


def _deploy(
    recorder: Recorder,
    run_id: str,
    *,
    created: datetime,
    finished: datetime,
    ok: bool,
    version: str | None,
    compensated_at: datetime | None = None,
    dag_id: str = DAG,
) -> None:
    recorder.run_started(
        dag_id,
        run_id,
        actor="scheduler",
        reason="started",
        facts={"dag_version_id": version},
        at=created,
    )
    recorder.run_finished(
        dag_id, run_id, succeeded=ok, actor="scheduler", reason="ended", at=finished
    )
    if compensated_at is not None:
        recorder.transition_run(
            dag_id, run_id, RunState.COMPENSATING, actor="worker", reason="undo", at=finished
        )
        recorder.transition_run(
            dag_id, run_id, RunState.COMPENSATED, actor="worker", reason="undone", at=compensated_at
        )


@pytest.fixture
def history(store: SqlStore) -> SqlStore:
    """Seven deployments of one DAG (and noise), times chosen so the answers are easy by hand.

    | run | version | created        | finished        | outcome                         |
    | r0  | v0      | 40 days ago    | 40 days ago +1h | COMPLETED (outside the window)  |
    | r1  | v1      | 20 days ago    | 20d ago +2h     | COMPLETED                       |
    | r2  | v2      | 10 days ago    | 10d ago +1h     | FAILED                          |
    | r3  | v2      | 10d ago +3h    | 10d ago +4h     | FAILED, then COMPENSATED        |
    | r4  | v3      | 10d ago +5h    | 10d ago +7h     | COMPLETED                       |
    | r5  | v3      | 5 days ago     | 5d ago +1h      | COMPLETED (same change again)   |
    | r6  | None    | 2 days ago     | 2d ago +0.5h    | COMPLETED                       |
    | r7  | v4      | 1 day ago      | 1d ago +1h      | FAILED (not restored yet)       |
    | r8  | v5      | 1 day ago      | -               | still RUNNING                   |
    """
    recorder = Recorder(store, RecordingEmitter())
    _deploy(recorder, "r0", created=_at(40), finished=_at(40, 1), ok=True, version="v0")
    _deploy(recorder, "r1", created=_at(20), finished=_at(20, 2), ok=True, version="v1")
    _deploy(recorder, "r2", created=_at(10), finished=_at(10, 1), ok=False, version="v2")
    _deploy(
        recorder,
        "r3",
        created=_at(10, 3),
        finished=_at(10, 4),
        ok=False,
        version="v2",
        compensated_at=_at(10, 4.5),
    )
    _deploy(recorder, "r4", created=_at(10, 5), finished=_at(10, 7), ok=True, version="v3")
    _deploy(recorder, "r5", created=_at(5), finished=_at(5, 1), ok=True, version="v3")
    _deploy(recorder, "r6", created=_at(2), finished=_at(2, 0.5), ok=True, version=None)
    _deploy(recorder, "r7", created=_at(1), finished=_at(1, 1), ok=False, version="v4")
    recorder.run_started(DAG, "r8", actor="scheduler", reason="started", at=_at(1))
    _deploy(
        recorder, "other", created=_at(3), finished=_at(3, 1), ok=False, version="x", dag_id="etl"
    )
    return store


def test_dora_figures_match_hand_arithmetic(history: SqlStore) -> None:
    figures = dora_for(history, DAG, window=timedelta(days=30), now=NOW)
    # Finished in the window: r1, r2, r3, r4, r5, r6, r7 (r0 is older, r8 still runs, etl is another DAG).
    assert figures.deployments == 7
    assert figures.successes == 4  # r1, r4, r5, r6
    assert figures.failures == 3  # r2 FAILED, r3 COMPENSATED, r7 FAILED
    assert figures.deployment_frequency_per_day == pytest.approx(4 / 30)
    assert figures.change_failure_rate == pytest.approx(3 / 7)
    # Lead time, one sample per change first delivered in the window:
    #   v1: created 20d ago, delivered 2h later                      -> 2h
    #   v3: first seen at r4's creation (10d+5h), delivered at +7h     -> 2h (r5 ships v3 again: no sample)
    #   r6 has no version: its own creation to its success           -> 0.5h
    # (v2 was never delivered, v4 failed.) Mean = (2 + 2 + 0.5) / 3 h = 1.5h.
    assert figures.lead_time_seconds == pytest.approx(1.5 * 3600)
    # MTTR: one restored episode, from r2's failure (10d+1h) to r4's success (10d+7h) = 6h; r7's
    # failure is still open.
    assert figures.mttr_seconds == pytest.approx(6 * 3600)
    assert figures.open_failure_since == _at(1, 1)


def test_lead_time_counts_from_the_first_run_of_a_version_even_outside_the_window(
    store: SqlStore,
) -> None:
    recorder = Recorder(store, RecordingEmitter())
    # v9 first tried 40 days ago (failed), delivered 2 days ago: a 38-day lead time.
    _deploy(recorder, "a", created=_at(40), finished=_at(40, 1), ok=False, version="v9")
    _deploy(recorder, "b", created=_at(2), finished=_at(2, 1), ok=True, version="v9")
    figures = dora_for(store, DAG, window=timedelta(days=7), now=NOW)
    assert figures.deployments == 1
    assert figures.lead_time_seconds == pytest.approx((38 * 24 + 1) * 3600)
    assert figures.mttr_seconds is None
    assert figures.change_failure_rate == 0


def test_a_completed_deployment_rolled_back_later_is_a_change_failure(store: SqlStore) -> None:
    recorder = Recorder(store, RecordingEmitter())
    _deploy(recorder, "a", created=_at(3), finished=_at(3, 1), ok=True, version="v1")
    recorder.transition_run(
        DAG, "a", RunState.COMPENSATING, actor="user", reason="wfe compensate --force", at=_at(2)
    )
    recorder.transition_run(DAG, "a", RunState.COMPENSATED, actor="worker", reason="", at=_at(2, 1))
    figures = dora_for(store, DAG, window=timedelta(days=7), now=NOW)
    assert (figures.deployments, figures.successes, figures.failures) == (1, 0, 1)
    assert figures.change_failure_rate == 1
    assert figures.deployment_frequency_per_day == 0


def test_rejected_runs_are_not_deployments(store: SqlStore) -> None:
    recorder = Recorder(store, RecordingEmitter())
    recorder.transition_run(DAG, "a", RunState.CREATED, actor="x", reason="", at=_at(1))
    recorder.transition_run(DAG, "a", RunState.REJECTED, actor="x", reason="frozen", at=_at(1))
    figures = dora_for(store, DAG, window=timedelta(days=7), now=NOW)
    assert figures.deployments == 0
    assert figures.change_failure_rate is None
    assert figures.lead_time_seconds is None


def test_empty_history_gives_no_figures() -> None:
    figures = compute_dora(DAG, [], window_end=NOW, window=timedelta(days=30))
    assert figures.deployments == 0
    assert figures.deployment_frequency_per_day == 0
    assert figures.to_json()["window_end"] == NOW.isoformat()


def test_the_end_of_a_deployment_run_emits_the_dora_gauges(store: SqlStore) -> None:
    emitter = RecordingEmitter(MetricsSettings(statsd_on=True, deployment_dags=("deploy_*",)))
    recorder = Recorder(store, emitter)
    now = datetime.now(UTC)
    _deploy(
        recorder,
        "a",
        created=now - timedelta(hours=3),
        finished=now - timedelta(hours=2),
        ok=False,
        version="v1",
    )
    _deploy(recorder, "b", created=now - timedelta(hours=1), finished=now, ok=True, version="v2")
    gauges = {name: value for kind, name, value, _ in emitter.sent if kind == "g"}
    assert gauges[names.dora(names.DORA_CHANGE_FAILURE_RATE, DAG)] == 0.5
    assert gauges[names.dora(names.DORA_MTTR, DAG)] == pytest.approx(2 * 3600)
    assert gauges[names.dora(names.DORA_LEAD_TIME, DAG)] == pytest.approx(3600)
    assert gauges[names.dora(names.DORA_DEPLOYMENT_FREQUENCY, DAG)] == pytest.approx(
        1 / 30, abs=1e-6
    )
    # Another DAG's end emits nothing of the kind.
    emitter.sent.clear()
    _deploy(recorder, "c", created=now, finished=now, ok=True, version=None, dag_id="etl")
    assert not [n for n in emitter.names("g") if n.startswith("wfe.dora")]


def test_history_reads_only_runs_that_changed_in_the_window(history: SqlStore) -> None:
    runs = history.run_histories([DAG], _at(3))
    assert [run.run_id for run in runs] == ["r6", "r7", "r8"]
