"""Saga compensation through a real Airflow (``dag.test()``): what is undone, in which order, once."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.adapters.saga.tasks import SAGA_BEGIN, SAGA_END, compensation_task_id
from airflow_wfe.core.records import RunRecord
from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("WFE_TEST_LEDGER", str(tmp_path / "ledger.jsonl"))
    reset_runtime()
    yield importlib.import_module("saga_ledger")
    reset_runtime()


def _record(dag_run: Any) -> RunRecord:
    return get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)


def _run_states(record: RunRecord) -> list[str]:
    return [t.to_state for t in record.transitions]


def _step(record: RunRecord, step_id: str, map_index: int = -1) -> Any:
    return next(s for s in record.steps if s.step_id == step_id and s.map_index == map_index)


def _ti_states(dag_run: Any) -> dict[str, str]:
    return {
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(
            getattr(ti.state, "value", ti.state)
        )
        for ti in dag_run.get_task_instances()
    }


def test_the_saga_tasks_are_real_airflow_tasks(dagbag: Any) -> None:
    dag = dagbag.get_dag("wfe_t_saga_linear")
    for task_id in (SAGA_BEGIN, compensation_task_id("reserve"), compensation_task_id("charge"),
                    SAGA_END):  # fmt: skip
        assert dag.get_task(task_id).is_teardown
    assert compensation_task_id("ship") not in dag.task_ids
    assert set(dag.get_task(SAGA_BEGIN).upstream_task_ids) == {"reserve", "charge", "ship"}
    assert (
        compensation_task_id("charge")
        in dag.get_task(compensation_task_id("reserve")).upstream_task_ids
    )


def test_linear_chain_is_undone_in_reverse_order(dagbag: Any, ledger: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_saga_linear").test()
    assert dag_run.state == "failed"  # Airflow's verdict on the forward steps stands
    record = _record(dag_run)
    assert _run_states(record) == [
        "CREATED", "VALIDATED", "RUNNING", "FAILED", "COMPENSATING", "COMPENSATED",
    ]  # fmt: skip
    assert record.transitions[3].reason == "step(s) failed: ship"
    undone = [e["step"] for e in ledger.read() if e["event"] == "undo"]
    assert undone == ["charge", "reserve"]
    charge = _step(record, "charge")
    assert [t.to_state for t in charge.transitions][-3:] == [
        "SUCCEEDED", "COMPENSATING", "COMPENSATED",
    ]  # fmt: skip
    assert charge.state == "COMPENSATED"
    assert _step(record, "ship").state == "FAILED"
    payment = next(e for e in ledger.read() if e["event"] == "undo" and e["step"] == "charge")
    assert payment["result"] == {"seat": "seat-12A", "amount": 420}
    assert payment["key"].startswith("wfe-")
    states = _ti_states(dag_run)
    assert states[compensation_task_id("charge")] == "success"
    assert states[SAGA_END] == "success"


def test_successful_run_compensates_nothing(dagbag: Any, ledger: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_saga_success").test()
    assert dag_run.state == "success"
    record = _record(dag_run)
    assert record.state == "COMPLETED"
    assert not [e for e in ledger.read() if e["event"] == "undo"]
    states = _ti_states(dag_run)
    for task_id in (SAGA_BEGIN, compensation_task_id("charge"), SAGA_END):
        assert states[task_id] == "skipped"
    assert {s.step_id for s in record.steps} == {"reserve", "charge", "ship"}


def test_diamond_compensates_only_what_succeeded_after_every_branch_finished(
    dagbag: Any, ledger: Any
) -> None:
    dag_run = dagbag.get_dag("wfe_t_saga_diamond").test()
    assert dag_run.state == "failed"
    events = ledger.read()
    undone = [(e["step"], e.get("key")) for e in events if e["event"] == "undo"]
    steps_undone = [step for step, _ in undone]
    # The failed branch and the never-run join are not compensated; both map indexes of the
    # mapped step are, each with its own key; the root goes last.
    assert "failing_branch" not in steps_undone
    assert "announce" not in steps_undone
    assert steps_undone.count("configure") == 2
    assert len({key for step, key in undone if step == "configure"}) == 2
    assert steps_undone[-1] == "provision"
    assert steps_undone.index("slow_branch") < steps_undone.index("provision")
    slow_done = next(e["at"] for e in events if e["event"] == "do" and e["step"] == "slow_branch")
    first_undo = min(e["at"] for e in events if e["event"] == "undo")
    assert first_undo > slow_done  # compensation waited for the branch that was still running
    record = _record(dag_run)
    assert record.state == "COMPENSATED"
    assert (
        _step(record, "configure", 0).state
        == _step(record, "configure", 1).state
        == ("COMPENSATED")
    )
    assert _step(record, "failing_branch").state == "FAILED"
    assert _step(record, "announce").state == "UPSTREAM_FAILED"


def test_a_compensation_that_fails_once_succeeds_on_retry(dagbag: Any, ledger: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_saga_undo_retry").test()
    record = _record(dag_run)
    assert record.state == "COMPENSATED"
    attempts = [e for e in ledger.read() if e["event"] == "undo-attempt"]
    assert [a["try_number"] for a in attempts] == [1, 2]
    assert len({a["key"] for a in attempts}) == 1  # the same idempotency key on every try
    charge = _step(record, "charge")
    compensating = [t for t in charge.transitions if t.to_state == "COMPENSATING"]
    assert len(compensating) == 1  # the retry continued the same compensation
    assert charge.state == "COMPENSATED"


def test_a_compensation_that_fails_for_good(dagbag: Any, ledger: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_saga_undo_fails").test()
    record = _record(dag_run)
    assert record.state == "COMPENSATION_FAILED"
    assert record.transitions[-1].reason == "compensation failed for: charge"
    assert _step(record, "charge").state == "COMPENSATION_FAILED"
    # The other compensation still ran: a failed undo does not stop the rest of the saga.
    assert _step(record, "reserve").state == "COMPENSATED"
    assert _ti_states(dag_run)[compensation_task_id("charge")] == "failed"


def test_a_succeeded_irreversible_step_ends_compensation_failed(dagbag: Any, ledger: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_saga_irreversible").test()
    record = _record(dag_run)
    assert record.state == "COMPENSATION_FAILED"
    assert record.transitions[-1].reason == "irreversible step(s) had succeeded: email_customers"
    assert _step(record, "stage").state == "COMPENSATED"
    assert _step(record, "email_customers").state == "SUCCEEDED"


def test_yaml_saga_compensates_in_reverse_order_and_reports_the_irreversible_step(
    dagbag: Any, ledger: Any
) -> None:
    dag = dagbag.get_dag("wfe_t_yaml_saga")
    assert compensation_task_id("book_hotel") in dag.task_ids
    assert compensation_task_id("notify_partner") not in dag.task_ids
    dag_run = dag.test()
    assert dag_run.state == "failed"
    undone = [e["step"] for e in ledger.read() if e["event"] == "undo"]
    assert undone == ["booking-hotel", "booking-flight"]
    record = _record(dag_run)
    assert record.state == "COMPENSATION_FAILED"
    assert record.transitions[-1].reason == "irreversible step(s) had succeeded: notify_partner"
    assert _step(record, "book_hotel").state == "COMPENSATED"
    assert _step(record, "notify_partner").state == "SUCCEEDED"
    assert _step(record, "pay").state == "FAILED"


def test_runs_show_lists_each_compensation_with_order_and_outcome(dagbag: Any, ledger: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    dag_run = dagbag.get_dag("wfe_t_saga_undo_fails").test()
    wfe = str(Path(sys.executable).parent / "wfe")
    shown = subprocess.run(
        [wfe, "runs", "show", dag_run.dag_id, dag_run.run_id, "--json"],
        check=True, capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )  # fmt: skip
    listed = [(c["order"], c["step_id"], c["outcome"]) for c in json.loads(shown.stdout)[
        "compensations"]]  # fmt: skip
    assert listed == [(1, "charge", "COMPENSATION_FAILED"), (2, "reserve", "COMPENSATED")]
    text = subprocess.run(
        [wfe, "runs", "show", dag_run.dag_id, dag_run.run_id],
        check=True, capture_output=True, text=True, env=dict(os.environ), timeout=120,
    ).stdout  # fmt: skip
    assert "Compensations (in the order they ran)" in text
    assert "1. charge: COMPENSATION_FAILED" in text
    assert "2. reserve: COMPENSATED" in text


def _wfe(*args: str) -> Any:
    import os
    import subprocess
    import sys

    return subprocess.run(
        [str(Path(sys.executable).parent / "wfe"), *args],
        check=False, capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )  # fmt: skip


def test_manual_compensation_refuses_what_it_must(dagbag: Any, ledger: Any) -> None:
    completed = dagbag.get_dag("wfe_t_saga_success").test()
    refused = _wfe("compensate", completed.dag_id, completed.run_id)
    assert refused.returncode == 1
    assert "COMPLETED" in refused.stderr
    assert "--force" in refused.stderr
    assert _record(completed).state == "COMPLETED"

    compensated = dagbag.get_dag("wfe_t_saga_linear").test()
    again = _wfe("compensate", compensated.dag_id, compensated.run_id, "--force")
    assert again.returncode == 1
    assert "is COMPENSATED" in again.stderr

    no_saga = dagbag.get_dag("wfe_example_success").test()
    nothing = _wfe("compensate", no_saga.dag_id, no_saga.run_id, "--force")
    assert nothing.returncode == 1
    assert "declares no compensation" in nothing.stderr
    assert _record(no_saga).state == "COMPLETED"  # the refusal changed nothing

    unknown = _wfe("compensate", "wfe_t_saga_linear", "no-such-run")
    assert unknown.returncode == 1
    assert "no governed run" in unknown.stderr


@pytest.mark.parametrize(
    ("dag_id", "run_state", "undone", "step_states"),
    [
        ("wfe_t_yaml_saga_success", "COMPLETED", [], {"book_hotel": "SUCCEEDED"}),
        (
            "wfe_t_yaml_saga_undo_retry",
            "COMPENSATED",
            ["booking-flight"],
            {"book_flight": "COMPENSATED", "pay": "FAILED"},
        ),
        (
            "wfe_t_yaml_saga_undo_fails",
            "COMPENSATION_FAILED",
            ["booking-flight"],
            {"book_hotel": "COMPENSATION_FAILED", "book_flight": "COMPENSATED"},
        ),
        (
            "wfe_t_yaml_saga_diamond",
            "COMPENSATED",
            ["booking-left", "booking-cluster"],
            {"right": "FAILED", "join": "UPSTREAM_FAILED", "left": "COMPENSATED"},
        ),
    ],
)
def test_yaml_saga_scenarios(
    dagbag: Any,
    ledger: Any,
    dag_id: str,
    run_state: str,
    undone: list[str],
    step_states: dict[str, str],
) -> None:
    dag_run = dagbag.get_dag(dag_id).test()
    record = _record(dag_run)
    assert record.state == run_state
    assert [e["step"] for e in ledger.read() if e["event"] == "undo"] == undone
    for step_id, state in step_states.items():
        assert _step(record, step_id).state == state
    attempts = [e for e in ledger.read() if e["event"] == "undo-attempt"]
    if attempts:
        assert [a["try_number"] for a in attempts] == [1, 2]
        assert len({a["key"] for a in attempts}) == 1
