"""A YAML workflow's ``budget:`` is a pre-flight check through real Airflow (``dag.test``, where the
first task runs the pre-flight): a run whose budget the cost ledger shows already spent is REJECTED
before any step runs, with the budget named; spending in another currency refuses it too (amounts are
never converted), and a budget with room left lets it start, named in the VALIDATED reason.

The workflow (``tests/scenarios/session/yaml_workflows/t_gated_ok.yaml``) declares
``budget: {per_run: 20, per_month: 1000}`` (USD) and no policy file applies to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_recorder, get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("fresh_runtime")]

DAG_ID = "wfe_t_yaml_gated_ok"
BUDGET = f"{DAG_ID}-budget"


def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{tmp_path}/wfe.db")
    monkeypatch.setenv("AIRFLOW__WFE__POLICY_PATH", str(tmp_path / "no-policies"))
    reset_runtime()
    get_recorder().start_run(DAG_ID, "earlier", actor="worker", reason="an earlier run")
    return get_runtime_store()


def _rejected(store: Any, run_id: str) -> str:
    record = store.get_run(DAG_ID, run_id)
    assert record.state == "REJECTED"
    assert [t.to_state for t in record.transitions] == ["CREATED", "REJECTED"]
    # No step ran, so none spent anything.
    assert not any(s.state in ("RUNNING", "SUCCEEDED") for s in record.steps)
    assert store.spent(DAG_ID, run_id)["run"] == 0.0
    return record.transitions[-1].reason or ""


def test_a_spent_monthly_budget_rejects_the_run_before_any_step(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, monkeypatch)
    store.record_cost(DAG_ID, "earlier", "prepare", 1000.5)
    dag_run = dagbag.get_dag(DAG_ID).test()
    assert dag_run.state == "failed"
    reason = _rejected(store, dag_run.run_id)
    assert reason.startswith("pre-flight refused the run: ")
    assert (
        f"policies FAILED: start policies say deny: {BUDGET}/per-month: budget dag_month would "
        "be exceeded: spent 1000.50 + reserved 0.00 of 1000.00 USD"
    ) in reason
    (decision,) = store.decisions(DAG_ID, dag_run.run_id)
    assert (decision.kind, decision.outcome) == ("preflight", "deny")
    rules = {(r["policy"], r["rule"]): r["outcome"] for r in decision.reasons}
    assert rules[(BUDGET, "per-month")] == "deny"
    assert rules[(BUDGET, "per-run")] == "allow"
    assert BUDGET in decision.policies


def test_spending_in_another_currency_refuses_the_run(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, monkeypatch)
    store.record_cost(DAG_ID, "earlier", "prepare", 3.0, currency="EUR")
    dag_run = dagbag.get_dag(DAG_ID).test()
    assert dag_run.state == "failed"
    reason = _rejected(store, dag_run.run_id)
    assert "could not be evaluated, failing closed" in reason
    assert "per-month" in reason
    assert "this budget is in USD but the ledger's dag_month spending is in EUR" in reason


def test_a_budget_with_room_left_lets_the_run_start(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, monkeypatch)
    store.record_cost(DAG_ID, "earlier", "prepare", 10.0)
    dag_run = dagbag.get_dag(DAG_ID).test()
    assert dag_run.state == "success"
    record = store.get_run(DAG_ID, dag_run.run_id)
    assert [t.to_state for t in record.transitions][:3] == ["CREATED", "VALIDATED", "RUNNING"]
    assert f"policies ok: start policies allow ({BUDGET})" in (record.transitions[1].reason or "")
