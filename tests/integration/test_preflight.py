"""A governed run's pre-flight through real Airflow (``dag.test``, where the first task runs it):
every check recorded, VALIDATED only when all pass, REJECTED before any step runs otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

FREEZE_NOW = """
name: freeze-now
version: "1"
stages: [start]
applies_to: {dags: [wfe_example_success]}
rules:
  - id: incident-freeze
    kind: change_window
    freeze: [{start: 2000-01-01T00:00:00, end: 2999-01-01T00:00:00, reason: incident freeze}]
"""

ALWAYS_OPEN = """
name: open-window
version: "1"
stages: [start]
applies_to: {dags: [wfe_example_success]}
rules:
  - id: any-minute
    kind: change_window
    allow: ["* * * * *"]
"""

BROKEN_RULE = """
name: divides-by-zero
stages: [start]
applies_to: {dags: [wfe_example_success]}
rules:
  - id: ratio
    when: '1 / 0 > 1'
    decision: deny
    reason: never reached
"""


def _policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: str) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("AIRFLOW__WFE__POLICY_PATH", str(folder))
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{tmp_path}/wfe.db")
    reset_runtime()
    return folder


def _ti_states(dag_run: Any) -> dict[str, str]:
    return {
        ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()
    }


def test_a_start_policy_that_denies_rejects_the_run_before_any_step_runs(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policies(tmp_path, monkeypatch, freeze=FREEZE_NOW)
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "failed"
    states = _ti_states(dag_run)
    assert states["extract"] == "failed"  # refused by its pre-execute check, not retried
    assert states["load"] == "upstream_failed"
    extract = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "extract")
    assert extract.try_number == 1

    store = get_runtime_store()
    record = store.get_run("wfe_example_success", dag_run.run_id)
    assert record.state == "REJECTED"
    assert [t.to_state for t in record.transitions] == ["CREATED", "REJECTED"]
    rejected = record.transitions[-1]
    assert rejected.reason is not None
    assert rejected.reason.startswith("pre-flight refused the run: definition ok: ")
    assert "params ok: " in rejected.reason
    assert (
        "policies FAILED: start policies say deny: freeze-now/incident-freeze: incident freeze"
        in (rejected.reason)
    )
    (decision,) = store.decisions("wfe_example_success", dag_run.run_id)
    assert (decision.kind, decision.outcome, decision.step_id) == (
        "preflight",
        "deny",
        "pre-flight",
    )
    rules = {(r["policy"], r["rule"]): r["outcome"] for r in decision.reasons}
    assert rules[("pre-flight", "definition")] == "allow"
    assert rules[("pre-flight", "params")] == "allow"
    assert rules[("pre-flight", "policies")] == "deny"
    assert rules[("freeze-now", "incident-freeze")] == "deny"
    assert decision.policies["freeze-now"].startswith("1+")
    # No step ran: the refused one is SKIPPED, naming the decision; the rest never started.
    steps = {(s.step_id, s.state) for s in record.steps}
    assert ("extract", "SKIPPED") in steps
    assert not any(s.state in ("RUNNING", "SUCCEEDED") for s in record.steps)
    extract_step = next(s for s in record.steps if s.step_id == "extract")
    assert extract_step.transitions[-1].reason == (
        "not run: the run was REJECTED at its pre-flight (see the run's history)"
    )

    # `wfe runs show` tells it as one story: refused at pre-flight, why, and that nothing ran.
    from airflow_wfe.app.context import AppContext
    from airflow_wfe.app.runs import run_detail
    from airflow_wfe.cli.text import render_decisions, render_run

    detail = run_detail(AppContext.from_process(), "wfe_example_success", dag_run.run_id)
    text = "\n".join([render_run(detail), *render_decisions(detail.decisions)])
    assert f"Run wfe_example_success / {dag_run.run_id}: REJECTED" in text
    assert "CREATED → REJECTED" in text or "CREATED -> REJECTED" in text
    assert "pre-flight: preflight DENY" in text
    assert "[freeze-now/incident-freeze]" in text


def test_a_run_whose_checks_pass_is_validated_with_each_check_recorded(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policies(tmp_path, monkeypatch, window=ALWAYS_OPEN)
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "success"
    store = get_runtime_store()
    record = store.get_run("wfe_example_success", dag_run.run_id)
    assert [t.to_state for t in record.transitions] == [
        "CREATED",
        "VALIDATED",
        "RUNNING",
        "COMPLETED",
    ]
    validated = record.transitions[1].reason or ""
    assert validated.startswith("pre-flight passed: definition ok: DAG 'wfe_example_success' known")
    assert "policies ok: start policies allow (open-window)" in validated
    (decision,) = store.decisions("wfe_example_success", dag_run.run_id)
    assert (decision.kind, decision.outcome) == ("preflight", "allow")
    assert any(r["rule"] == "any-minute" for r in decision.reasons)


def test_a_start_rule_that_cannot_be_evaluated_rejects_naming_policy_rule_and_file(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _policies(tmp_path, monkeypatch, ratio=BROKEN_RULE)
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "failed"
    record = get_runtime_store().get_run("wfe_example_success", dag_run.run_id)
    assert record.state == "REJECTED"
    reason = record.transitions[-1].reason or ""
    assert "could not be evaluated, failing closed" in reason
    assert str(folder / "ratio.yaml") in reason
    assert "'ratio'" in reason


def test_gate_stage_policies_are_not_evaluated_at_pre_flight(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policies(tmp_path, monkeypatch, freeze=FREEZE_NOW.replace("stages: [start]\n", ""))
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "success"
    record = get_runtime_store().get_run("wfe_example_success", dag_run.run_id)
    assert record.state == "COMPLETED"
    assert "policies ok: no start policy applies" in (record.transitions[1].reason or "")
