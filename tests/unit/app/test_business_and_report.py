"""Business metrics stored with the run and emitted; the optimisation report; wfe dora / report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_wfe.adapters.task.business_metrics import record_business_metric
from airflow_wfe.app.report import build_report, percentile, report_model
from airflow_wfe.cli.text import render_report
from airflow_wfe.core.metrics import RecordingEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore

NOW = datetime.now(UTC).replace(microsecond=0)
#: Where the recorded runs start: an hour ago, but never so that their ~37 minutes span midnight
#: (the report buckets cost per UTC day, so the test would fail shortly after 00:00 UTC).
_SPAN = timedelta(seconds=2200)
_BASE = NOW - timedelta(hours=1)
if (_BASE + _SPAN).date() != _BASE.date():
    _BASE = (_BASE + _SPAN).replace(hour=0, minute=0, second=0) - _SPAN


def _s(seconds: float) -> datetime:
    return _BASE + timedelta(seconds=seconds)


def test_a_business_metric_is_stored_with_the_run_and_emitted(store: SqlStore) -> None:
    emitter = RecordingEmitter()
    Recorder(store, emitter).run_started("campaign", "r1", actor="worker", reason="go")
    stored = record_business_metric(
        "roi",
        1.75,
        unit="ratio",
        dag_id="campaign",
        run_id="r1",
        step_id="evaluate",
        store=store,
        emitter=emitter,
    )
    assert stored
    assert emitter.sent[-1] == (
        "g",
        "wfe.business.roi.campaign",
        1.75,
        {"dag_id": "campaign", "step": "evaluate", "unit": "ratio"},
    )
    [metric] = store.business_metrics(run_id="r1")
    assert (metric.dag_id, metric.step_id, metric.name, metric.value, metric.unit) == (
        "campaign",
        "evaluate",
        "roi",
        1.75,
        "ratio",
    )


def test_a_metric_of_an_unknown_run_is_emitted_not_stored(store: SqlStore) -> None:
    emitter = RecordingEmitter()
    assert not record_business_metric(
        "cpa", 3.0, dag_id="x", run_id="nope", store=store, emitter=emitter
    )
    assert emitter.names() == ["wfe.business.cpa.x"]


@pytest.mark.parametrize("name", ["ROI", "cost per run", "1st", "", "a" * 101])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="business metric name"):
        record_business_metric(name, 1, dag_id="d", run_id="r", emitter=RecordingEmitter())


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        record_business_metric("roi", float("nan"), dag_id="d", run_id="r")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10
    assert percentile(values, 95) == 19
    assert percentile([7.0], 95) == 7


@pytest.fixture
def busy_store(store: SqlStore) -> SqlStore:
    """Three runs of ``etl``: `load` slow, `fetch` retried twice with one error, costs per run."""
    recorder = Recorder(store, RecordingEmitter())
    for number, (ok, load_seconds) in enumerate([(True, 10), (True, 30), (False, 50)]):
        run = f"r{number}"
        base = number * 1000
        recorder.run_started("etl", run, actor="worker", reason="go", at=_s(base))
        step = recorder.step
        step("etl", run, "fetch", StepState.RUNNING, actor="w", try_number=1, at=_s(base + 1))
        if number < 2:
            step(
                "etl",
                run,
                "fetch",
                StepState.RETRYING,
                actor="w",
                reason="ConnectionError: API answered 503",
                try_number=1,
                at=_s(base + 2),
            )
            step("etl", run, "fetch", StepState.RUNNING, actor="w", try_number=2, at=_s(base + 3))
        step("etl", run, "fetch", StepState.SUCCEEDED, actor="w", at=_s(base + 4))
        step("etl", run, "load", StepState.RUNNING, actor="w", at=_s(base + 5))
        step(
            "etl",
            run,
            "load",
            StepState.SUCCEEDED if ok else StepState.FAILED,
            actor="w",
            reason=None if ok else "ValueError: bad row",
            at=_s(base + 5 + load_seconds),
        )
        recorder.run_finished(
            "etl", run, succeeded=ok, actor="scheduler", reason="end", at=_s(base + 100)
        )
        for step_id, cost in (("fetch", 1.0), ("load", 2.0 + number)):
            record_business_metric(
                "cost",
                cost,
                unit="EUR",
                dag_id="etl",
                run_id=run,
                step_id=step_id,
                store=store,
                emitter=RecordingEmitter(),
                at=_s(base + 50),
            )
    return store


def test_report_ranks_what_to_improve(busy_store: SqlStore) -> None:
    since = NOW - timedelta(days=1)
    report = build_report(
        busy_store.run_histories(["etl"], since),
        busy_store.step_histories(["etl"], since),
        busy_store.business_metrics(dag_ids=["etl"], since=since),
        window_end=NOW,
        window=timedelta(days=1),
        dag_ids=["etl"],
    )
    assert report.runs == 3
    assert report.runs_by_state == {"COMPLETED": 2, "FAILED": 1}
    assert report.failure_rate == pytest.approx(1 / 3, abs=1e-6)
    assert report.compensation_rate == 0
    top = report.slowest_steps[0]
    assert (top["step_id"], top["tries"], top["p50_seconds"], top["p95_seconds"]) == (
        "load",
        3,
        30,
        50,
    )
    [retried] = report.most_retried_steps
    assert (retried["step_id"], retried["retries"]) == ("fetch", 2)
    assert retried["errors"] == [{"error": "ConnectionError: API answered 503", "count": 2}]
    assert report.cost_per_run == [
        {"day": _s(50).date().isoformat(), "runs": 3, "mean_cost_per_run": 4.0}
    ]
    assert report.costliest_steps[0] == {"dag_id": "etl", "step_id": "load", "cost": 9.0}
    text = render_report(report_model(report))
    assert "etl.load: 30.0s / 50.0s over 3 tries" in text
    assert "no gate decisions recorded" in text
    assert report.advice
    assert "etl.load" in report.advice[0]


def test_cli_report_and_dora(
    busy_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow_wfe.cli.main import main
    from airflow_wfe.engine.harness import reset_runtime

    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", busy_store.url)
    monkeypatch.setenv("AIRFLOW__WFE__DEPLOYMENT_DAGS", "et*")
    reset_runtime()
    try:
        assert main(["report", "--dag", "etl", "--window", "1d", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["runs"] == 3
        assert report["gates"] == []
        assert main(["dora", "--json", "--window", "7d"]) == 0
        [figures] = json.loads(capsys.readouterr().out)
        assert figures["dag_id"] == "etl"
        assert (figures["deployments"], figures["successes"], figures["failures"]) == (3, 2, 1)
        assert figures["change_failure_rate"] == pytest.approx(1 / 3)
        assert main(["dora", "--dag", "etl"]) == 0
        assert "change failure rate    33.3%" in capsys.readouterr().out
        assert main(["report"]) == 0
        assert "Slowest steps" in capsys.readouterr().out
    finally:
        monkeypatch.undo()
        reset_runtime()


def test_cli_window_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_wfe.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["dora", "--window", "soon"])
    assert exit_info.value.code == 2
    assert "'soon' is not a duration; write e.g. 30s" in capsys.readouterr().err
