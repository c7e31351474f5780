"""The example gates (dags/, policies in dags/policies as `make demo` uses them) through Airflow."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store
from airflow_wfe.engine.preflight import PREFLIGHT_STEP

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


def test_budget_example_is_rejected_and_compensated(dagbag: Any) -> None:
    dag_run = dagbag.get_dag("wfe_example_budget_gate").test()
    assert dag_run.state == "failed"
    store = get_runtime_store()
    record = store.get_run("wfe_example_budget_gate", dag_run.run_id)
    assert record.state == "COMPENSATED"
    translate = next(s for s in record.steps if s.step_id == "translate")
    assert translate.state == "COMPENSATED"
    (decision,) = store.decisions("wfe_example_budget_gate", dag_run.run_id)
    assert decision.outcome == "deny"
    assert decision.policies["llm-run-budget"].startswith("2026.11+")


def test_yaml_release_example_passes_its_gate(dagbag: Any) -> None:
    dag_run = dagbag.get_dag("wfe_example_yaml_release").test()
    assert dag_run.state == "success"
    store = get_runtime_store()
    # The workflow's own budget is a start policy too: the pre-flight decided first.
    preflight, decision = store.decisions("wfe_example_yaml_release", dag_run.run_id)
    assert (preflight.step_id, preflight.outcome) == (PREFLIGHT_STEP, "allow")
    assert decision.outcome == "allow"
    assert set(decision.policies) == {"release", "wfe_example_yaml_release-budget"}
    rules = {r["rule"] for r in decision.reasons}
    assert {"year-end-freeze", "team-budget", "per-run", "per-month"} <= rules


def test_a_small_release_is_auto_approved(dagbag: Any) -> None:
    dag_run = dagbag.get_dag("wfe_approval_release").test(run_conf={"change_size": "small"})
    assert dag_run.state == "success"
    (decision,) = get_runtime_store().decisions("wfe_approval_release", dag_run.run_id)
    assert decision.outcome == "allow"
    messages = {r["rule"]: r["message"] for r in decision.reasons}
    assert messages["two-people"] == "auto-approved: the policy rates it low risk"
