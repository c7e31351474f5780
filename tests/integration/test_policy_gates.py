"""Policy gates through real Airflow (``dag.test``): budgets, freeze windows, allowed changes, and a
run that overspends; each decision recorded with its reasons and policy versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store, reset_runtime
from airflow_wfe.engine.preflight import PREFLIGHT_STEP

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

POLICIES = Path(__file__).resolve().parents[1] / "policies"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("WFE_TEST_LEDGER", str(path))
    monkeypatch.setenv("AIRFLOW__WFE__POLICY_PATH", str(POLICIES))
    reset_runtime()
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _states(dag_run: Any) -> dict[str, str]:
    return {
        ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()
    }


def test_a_budget_gate_stops_the_run_before_the_expensive_step_and_compensates(
    dagbag: Any, ledger: Path
) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_budget").test()
    assert dag_run.state == "failed"
    states = _states(dag_run)
    assert states["budget_gate"] == "failed"
    assert states["expensive"] == "upstream_failed"
    assert _lines(ledger) == ["book", "unbook b1"]  # never "expensive ran"

    store = get_runtime_store()
    record = store.get_run("wfe_t_gate_budget", dag_run.run_id)
    assert [t.to_state for t in record.transitions][-3:] == [
        "REJECTED",
        "COMPENSATING",
        "COMPENSATED",
    ]
    rejected = next(t for t in record.transitions if t.to_state == "REJECTED")
    assert rejected.actor == "gate:budget_gate"
    assert "budget run would be exceeded: spent 8.00 + reserved 5.00 of 10.00 USD" in (
        rejected.reason or ""
    )
    (decision,) = store.decisions("wfe_t_gate_budget", dag_run.run_id)
    assert (decision.kind, decision.outcome, decision.step_id) == ("policy", "deny", "budget_gate")
    assert decision.policies["run-budget"].startswith("1+")  # label + content hash
    assert decision.reasons[0]["rule"] == "per-run"


def test_a_freeze_window_denies(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_freeze").test()
    assert dag_run.state == "failed"
    assert _states(dag_run)["release"] == "upstream_failed"
    assert _lines(ledger) == []
    store = get_runtime_store()
    (decision,) = store.decisions("wfe_t_gate_freeze", dag_run.run_id)
    assert decision.outcome == "deny"
    assert decision.reasons[0]["message"].startswith("year-end change freeze: frozen until ")
    assert store.get_run("wfe_t_gate_freeze", dag_run.run_id).state == "REJECTED"


def test_a_low_risk_change_is_allowed_with_every_reason(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_allow").test()
    assert dag_run.state == "success"
    assert _lines(ledger) == ["promoted"]
    store = get_runtime_store()
    (decision,) = store.decisions("wfe_t_gate_allow", dag_run.run_id)
    assert decision.outcome == "allow"
    assert set(decision.policies) == {"risk", "run-budget"}
    messages = [r["message"] for r in decision.reasons]
    assert messages == ["budget run holds: spent 0.00 + reserved 1.00 of 10.00 USD"]
    facts = decision.details["facts"]
    assert facts["metrics"] == {"error_rate": 0.01}  # from the @policy_gate function
    assert facts["step"] == {"id": "canary_ok", "risk": "low"}
    assert store.get_run("wfe_t_gate_allow", dag_run.run_id).state == "COMPLETED"


def test_a_run_that_overspends_stops_and_compensates(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_overspend").test()
    assert dag_run.state == "failed"
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert str(tis["costly"].state) in ("failed", "TaskInstanceState.FAILED")
    assert tis["costly"].try_number == 1  # the budget failure is not retried
    assert _lines(ledger) == ["unbook c1"]
    record = get_runtime_store().get_run("wfe_t_gate_overspend", dag_run.run_id)
    assert record.state == "COMPENSATED"
    costly = next(s for s in record.steps if s.step_id == "costly")
    assert "over its budget of 10.00" in (costly.transitions[-1].reason or "")


def test_yaml_gate_and_budget_reject_before_the_expensive_step(dagbag: Any, ledger: Path) -> None:
    dag = dagbag.get_dag("wfe_t_yaml_gated")
    assert "expensive" in dag.get_task("gate__expensive").downstream_task_ids
    dag_run = dag.test()
    assert dag_run.state == "failed"
    states = _states(dag_run)
    assert (states["prepare"], states["gate__expensive"], states["expensive"]) == (
        "success",
        "failed",
        "upstream_failed",
    )
    store = get_runtime_store()
    record = store.get_run("wfe_t_yaml_gated", dag_run.run_id)
    assert record.state == "COMPENSATED"
    assert record.spec_version == "1.2"
    # The workflow's own budget is a start policy too: the pre-flight decided first.
    preflight, decision = store.decisions("wfe_t_yaml_gated", dag_run.run_id)
    assert (preflight.step_id, preflight.outcome) == (PREFLIGHT_STEP, "allow")
    assert decision.outcome == "deny"
    assert decision.policies["wfe_t_yaml_gated-budget"].startswith("1.2+")
    assert "spent 6.00 + reserved 5.00 of 10.00 USD" in decision.reasons[0]["message"]


def test_yaml_gate_allows_within_budget_and_costs_reach_the_ledger(
    dagbag: Any, ledger: Path
) -> None:

    dag_run = dagbag.get_dag("wfe_t_yaml_gated_ok").test()
    assert dag_run.state == "success"
    store = get_runtime_store()
    # The workflow's own budget is a start policy too: the pre-flight decided first.
    preflight, decision = store.decisions("wfe_t_yaml_gated_ok", dag_run.run_id)
    assert (preflight.step_id, preflight.outcome) == (PREFLIGHT_STEP, "allow")
    assert decision.outcome == "allow"
    totals = store.spent("wfe_t_yaml_gated_ok", dag_run.run_id)
    assert 11.0 <= totals["run"] < 11.5  # 6 + 5 + a few ms at 0.001/s
    assert totals["dag_month"] >= totals["run"]


def test_a_policy_that_cannot_be_evaluated_fails_the_gate_closed(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_fail_closed").test()
    assert dag_run.state == "failed"
    assert _states(dag_run)["ship"] == "upstream_failed"
    assert _lines(ledger) == []
    store = get_runtime_store()
    (decision,) = store.decisions("wfe_t_gate_fail_closed", dag_run.run_id)
    assert decision.outcome == "deny"
    message = decision.reasons[0]["message"]
    assert message.startswith("policies could not be evaluated, failing closed: ")
    assert (
        "policy 'needs-latency' rule 'slow' (wfe_t_gate_fail_closed.latency_gate[0]): cannot "
        "evaluate" in message
    )
    assert store.get_run("wfe_t_gate_fail_closed", dag_run.run_id).state == "REJECTED"


def test_any_evaluation_error_is_a_recorded_deny_naming_policy_rule_and_file(
    dagbag: Any, ledger: Path
) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_division").test()
    assert dag_run.state == "failed"
    assert _lines(ledger) == []
    store = get_runtime_store()
    (decision,) = store.decisions("wfe_t_gate_division", dag_run.run_id)
    assert decision.outcome == "deny"
    (reason,) = decision.reasons
    assert reason["policy"] == "error-ratio"
    assert reason["rule"] == "ratio"
    assert "wfe_t_gate_division.ratio_gate[0]" in reason["message"]
    assert "division by zero" in reason["message"]
    assert store.get_run("wfe_t_gate_division", dag_run.run_id).state == "REJECTED"
