"""Blast-radius waves through real Airflow (``dag.test()``): every wave checked, a wave with too
many failed targets stops the rollout and the saga undoes every deployed target, newest wave first;
failures within ``max_failed`` let the rollout go on without compensating."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("WFE_TEST_LEDGER", str(path))
    reset_runtime()
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _waves(dag_id: str, run_id: str) -> list[tuple[str, str]]:
    return [
        (d.step_id, d.outcome)
        for d in get_runtime_store().decisions(dag_id, run_id)
        if d.kind == "wave"
    ]


def test_every_wave_is_checked_and_the_rollout_completes(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_waves_ok").test()
    assert dag_run.state == "success"
    assert sorted(_lines(ledger)) == sorted(f"deploy h{i}" for i in range(10))
    assert _waves("wfe_t_waves_ok", dag_run.run_id) == [
        ("rollout.wave_1_check", "continue"),
        ("rollout.wave_2_check", "continue"),
        ("rollout.wave_3_check", "continue"),
    ]
    steps = get_runtime_store().step_states("wfe_t_waves_ok", dag_run.run_id)
    assert {(s, i) for (s, i) in steps if s == "rollout.wave_2"} == {
        ("rollout.wave_2", i) for i in range(4)
    }


def test_a_failed_wave_stops_the_rollout_and_undoes_every_target_newest_first(
    dagbag: Any, ledger: Path
) -> None:
    dag_run = dagbag.get_dag("wfe_t_waves_stop").test()
    assert dag_run.state == "failed"
    lines = _lines(ledger)
    deployed = [line for line in lines if line.startswith("deploy")]
    undone = [line for line in lines if line.startswith("undo")]
    assert sorted(deployed) == ["deploy h0", "deploy h1", "deploy h2", "deploy h4"]
    assert sorted(undone[:3]) == ["undo h1", "undo h2", "undo h4"]  # wave 2 first
    assert undone[3:] == ["undo h0"]  # then wave 1
    decisions = _waves("wfe_t_waves_stop", dag_run.run_id)
    assert decisions == [("rollout.wave_1_check", "continue"), ("rollout.wave_2_check", "stop")]
    (stop,) = [
        d
        for d in get_runtime_store().decisions("wfe_t_waves_stop", dag_run.run_id)
        if d.outcome == "stop"
    ]
    assert stop.reasons[0]["message"] == (
        "wave 2 of 3: 1 of 4 targets failed (25%, at most 0% allowed): h3"
    )
    run = get_runtime_store().get_run("wfe_t_waves_stop", dag_run.run_id)
    assert run.state == "COMPENSATED"


def test_failures_within_max_failed_let_the_rollout_go_on(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_waves_tolerated").test()
    assert dag_run.state == "success"
    assert not [line for line in _lines(ledger) if line.startswith("undo")]
    assert [o for _, o in _waves("wfe_t_waves_tolerated", dag_run.run_id)] == ["continue"] * 3
    run = get_runtime_store().get_run("wfe_t_waves_tolerated", dag_run.run_id)
    assert run.state == "COMPLETED"


def test_a_yaml_waves_key_rolls_out_and_undoes_newest_wave_first(dagbag: Any, ledger: Path) -> None:
    dag = dagbag.get_dag("wfe_t_yaml_waves")
    assert dag.get_task("announce").upstream_task_ids == {"push.wave_3_check"}
    dag_run = dag.test()
    assert dag_run.state == "failed"
    entries = [json.loads(line) for line in _lines(ledger)]
    done = sorted(e["step"] for e in entries if e["event"] == "do")
    undone = [e["step"] for e in entries if e["event"] == "undo"]
    assert done == ["push h0", "push h1"]
    assert undone == ["push h1", "push h0"]  # wave 2, then wave 1
    assert _waves("wfe_t_yaml_waves", dag_run.run_id) == [
        ("push.wave_1_check", "continue"),
        ("push.wave_2_check", "stop"),
    ]
