"""Governed runs through a real Airflow (``dag.test()``), read back from the real state store.

The central promise: for any DAG shape, the recorded step states agree with Airflow's own task
instance states, including tasks that the scheduler skipped or failed without ever running them.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_wfe.adapters.listeners.mapping import STEP_STATE_OF_TI
from airflow_wfe.core.records import RunRecord
from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


def _run(dagbag: Any, dag_id: str) -> Any:
    dag = dagbag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not in the test DAGs folder"
    return dag.test()


def _airflow_states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {
        (ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state))
        for ti in dag_run.get_task_instances()
        if ti.state is not None and str(getattr(ti.state, "value", ti.state)) != "removed"
    }


def _recorded(dag_run: Any) -> RunRecord:
    return get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)


def _assert_agrees(dag_run: Any, record: RunRecord) -> None:
    expected = {
        key: STEP_STATE_OF_TI[state].value for key, state in _airflow_states(dag_run).items()
    }
    recorded = {(s.step_id, s.map_index): s.state for s in record.steps}
    assert recorded == expected
    for step in record.steps:
        states = [t.to_state for t in step.transitions]
        assert states[0] == "PENDING", (step.step_id, states)
        assert states[-1] == step.state, (step.step_id, states)
        for before, after in zip(step.transitions, step.transitions[1:], strict=False):
            assert after.from_state == before.to_state, (step.step_id, states)


def _run_states(record: RunRecord) -> list[str]:
    return [t.to_state for t in record.transitions]


def test_successful_example_is_completed_with_every_map_index(dagbag: Any) -> None:
    dag_run = _run(dagbag, "wfe_example_success")
    assert dag_run.state == "success"
    record = _recorded(dag_run)
    assert record.state == "COMPLETED"
    assert _run_states(record) == ["CREATED", "VALIDATED", "RUNNING", "COMPLETED"]
    assert record.run_type == "manual"
    assert record.dag_version_id
    scores = sorted(s.map_index for s in record.steps if s.step_id == "score")
    assert scores == [0, 1, 2]
    _assert_agrees(dag_run, record)
    end = record.transitions[-1]
    assert end.actor == "scheduler"
    assert end.reason == "all tasks finished; Airflow marked the run success"


def test_failing_example_records_the_retry_and_the_failure(dagbag: Any) -> None:
    dag_run = _run(dagbag, "wfe_example_retry_fail")
    assert dag_run.state == "failed"
    record = _recorded(dag_run)
    assert record.state == "FAILED"
    assert _run_states(record) == ["CREATED", "VALIDATED", "RUNNING", "FAILED"]
    steps = {s.step_id: s for s in record.steps}
    flaky = steps["flaky_publish"]
    assert [(t.to_state, t.try_number) for t in flaky.transitions] == [
        ("PENDING", 1),
        ("RUNNING", 1),
        ("RETRYING", 1),
        ("RUNNING", 2),
        ("FAILED", 2),
    ]
    assert flaky.try_number == 2
    assert "ConnectionError: publishing batch-42" in (flaky.transitions[2].reason or "")
    assert steps["notify"].state == "UPSTREAM_FAILED"
    assert steps["notify"].transitions[-1].actor == "scheduler"
    times = [t.at for t in record.transitions]
    assert times == sorted(times)
    _assert_agrees(dag_run, record)


@pytest.mark.parametrize(
    ("dag_id", "airflow_state", "wfe_state"),
    [
        ("wfe_t_branch", "success", "COMPLETED"),
        ("wfe_t_trigger_rules", "failed", "FAILED"),
        ("wfe_t_groups_mapped", "success", "COMPLETED"),
        ("wfe_t_skip_self", "success", "COMPLETED"),
    ],
)
def test_recorded_steps_agree_with_airflow(
    dagbag: Any, dag_id: str, airflow_state: str, wfe_state: str
) -> None:
    dag_run = _run(dagbag, dag_id)
    assert dag_run.state == airflow_state
    record = _recorded(dag_run)
    assert record.state == wfe_state
    _assert_agrees(dag_run, record)


def test_branch_skip_is_reconciled_by_the_scheduler_not_a_worker(dagbag: Any) -> None:
    record = _recorded(_run(dagbag, "wfe_t_branch"))
    steps = {s.step_id: s for s in record.steps}
    assert steps["right"].state == "SKIPPED"
    assert {t.actor for t in steps["right"].transitions} == {"scheduler"}
    assert steps["left"].state == "SUCCEEDED"
    assert {t.actor for t in steps["left"].transitions} == {"worker"}


def test_task_groups_mapping_and_setup_teardown(dagbag: Any) -> None:
    record = _recorded(_run(dagbag, "wfe_t_groups_mapped"))
    steps = {(s.step_id, s.map_index): s.state for s in record.steps}
    assert steps[("work.double", 0)] == steps[("work.double", 2)] == "SUCCEEDED"
    assert steps[("work.double_none", -1)] == "SKIPPED"
    assert steps[("create_cluster", -1)] == steps[("delete_cluster", -1)] == "SUCCEEDED"


def test_a_task_that_skips_itself_is_recorded_by_its_worker(dagbag: Any) -> None:
    record = _recorded(_run(dagbag, "wfe_t_skip_self"))
    steps = {s.step_id: s for s in record.steps}
    assert [t.to_state for t in steps["maybe"].transitions] == ["PENDING", "RUNNING", "SKIPPED"]
    assert steps["maybe"].transitions[-1].actor == "worker"
    assert steps["downstream"].state == "SKIPPED"


def test_ungoverned_dag_is_not_recorded(dagbag: Any) -> None:
    dag_run = _run(dagbag, "wfe_t_ungoverned")
    assert dag_run.state == "success"
    assert get_runtime_store().list_runs(dag_id="wfe_t_ungoverned") == []


def test_govern_all_records_untagged_dags(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__GOVERN", "all")
    reset_runtime()
    dag_run = _run(dagbag, "wfe_t_ungoverned")
    assert _recorded(dag_run).state == "COMPLETED"


def test_disabled_plugin_records_nothing(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__ENABLED", "False")
    reset_runtime()
    dag_run = _run(dagbag, "wfe_example_success")
    assert dag_run.state == "success"
    monkeypatch.delenv("AIRFLOW__WFE__ENABLED")
    reset_runtime()
    ids = [r.run_id for r in get_runtime_store().list_runs(dag_id="wfe_example_success")]
    assert dag_run.run_id not in ids
