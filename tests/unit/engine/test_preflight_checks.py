"""The pre-flight's checks (pure) and how the recorder writes them (a real store, SQLite and
PostgreSQL): VALIDATED only when every check passes, REJECTED with a decision otherwise, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.policy import load_policy_set
from airflow_wfe.engine.preflight import PreflightResult, RunCandidate, run_preflight
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore

START_BUDGET = """
name: day-budget
stages: [start]
rules:
  - {id: per-day, kind: budget, scope: dag_day, limit: 10}
"""
START_APPROVAL = """
name: ask-first
stages: [start]
rules:
  - {id: ask, kind: approval, approvers: [alice]}
"""
GATE_ONLY = """
name: gate-freeze
rules:
  - id: freeze
    kind: change_window
    freeze: [{start: 2000-01-01T00:00:00, end: 2999-01-01T00:00:00}]
"""
BROKEN_START = """
name: broken
stages: [start]
rules:
  - {id: x, kind: budget, scope: nowhere, limit: 1}
"""


def _folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def _candidate(**changes: Any) -> RunCandidate:
    return RunCandidate(dag_id="deploy", run_id="r1", dag_version="v1", **changes)


def _never() -> dict[str, Any]:
    raise AssertionError("the ledger must not be read without a start budget")


def test_every_check_passes_and_gate_policies_are_left_to_gates(tmp_path: Path) -> None:
    policies = load_policy_set(_folder(tmp_path, gate=GATE_ONLY))
    result = run_preflight(_candidate(params_count=2), policies, _never)
    assert result.passed
    assert [(c.name, c.passed) for c in result.checks] == [
        ("definition", True),
        ("params", True),
        ("policies", True),
    ]
    assert result.summary() == (
        "pre-flight passed: definition ok: DAG 'deploy' known to Airflow (DAG version v1); "
        "params ok: 2 param(s) valid against the DAG's params schema; "
        "policies ok: no start policy applies"
    )


@pytest.mark.parametrize(
    ("changes", "check", "message"),
    [
        ({"definition_error": "no parsed DAG"}, "definition", "no parsed DAG"),
        ({"params_error": "param 'env' is not one of ['dev', 'prod']"}, "params", "'env'"),
    ],
)
def test_an_unknown_definition_or_invalid_params_refuse(
    tmp_path: Path, changes: dict[str, Any], check: str, message: str
) -> None:
    result = run_preflight(_candidate(**changes), load_policy_set(tmp_path), _never)
    assert not result.passed
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == [check]
    assert message in failed[0].message


def test_a_spent_budget_refuses_and_the_ledger_is_read(tmp_path: Path) -> None:
    policies = load_policy_set(_folder(tmp_path, budget=START_BUDGET))
    spent = {"run": 0.0, "dag_day": 12.5, "dag_month": 12.5, "tag_day": {}, "tag_month": {}}
    result = run_preflight(_candidate(), policies, lambda: spent)
    assert not result.passed
    assert "day-budget/per-day: budget dag_day would be exceeded: spent 12.50" in (
        result.checks[-1].message
    )
    assert result.policies["day-budget"]


def test_needs_approval_cannot_wait_at_pre_flight(tmp_path: Path) -> None:
    policies = load_policy_set(_folder(tmp_path, ask=START_APPROVAL))
    result = run_preflight(_candidate(), policies, _never)
    assert not result.passed
    assert "approvals belong to a gate" in result.checks[-1].message


def test_a_broken_start_policy_file_fails_closed(tmp_path: Path) -> None:
    policies = load_policy_set(_folder(tmp_path, broken=BROKEN_START, gate=GATE_ONLY))
    result = run_preflight(_candidate(), policies, _never)
    assert not result.passed
    assert "could not be loaded, failing closed" in result.checks[-1].message
    assert "broken.yaml" in result.checks[-1].message


def test_the_result_survives_the_spool_round_trip(tmp_path: Path) -> None:
    result = run_preflight(_candidate(params_error="bad"), load_policy_set(tmp_path), _never)
    assert PreflightResult.from_dict(result.to_dict()) == result


def test_the_recorder_rejects_with_a_decision_once(store: SqlStore, tmp_path: Path) -> None:
    recorder = Recorder(store, NullEmitter())
    refused = run_preflight(_candidate(params_error="bad"), load_policy_set(tmp_path), _never)
    start = recorder.run_preflight("deploy", "r1", refused, actor="scheduler", reason="started")
    assert start.state == "REJECTED"
    assert [t.to_state for t in start.written] == ["CREATED", "REJECTED"]
    # A task racing the scheduler's pre-flight finds it done: nothing more is written.
    again = recorder.run_preflight("deploy", "r1", refused, actor="worker", reason="task")
    assert (again.written, again.state, again.known) == ([], "REJECTED", True)
    (decision,) = store.decisions("deploy", "r1")
    assert (decision.kind, decision.outcome, decision.step_id) == (
        "preflight",
        "deny",
        "pre-flight",
    )
    assert {r["rule"]: r["outcome"] for r in decision.reasons}["params"] == "deny"


def test_a_plain_pass_is_told_by_the_validated_reason_alone(
    store: SqlStore, tmp_path: Path
) -> None:
    recorder = Recorder(store, NullEmitter())
    passed = run_preflight(_candidate(), load_policy_set(tmp_path), _never)
    held = recorder.start_run("deploy", "r2", actor="worker", reason="t", preflight_pending=True)
    assert (held.state, [t.to_state for t in held.written]) == ("CREATED", ["CREATED"])
    start = recorder.run_preflight("deploy", "r2", passed, actor="worker", reason="task started")
    assert [t.to_state for t in start.written] == ["VALIDATED", "RUNNING"]
    assert (start.written[0].reason or "").startswith("pre-flight passed: ")
    assert store.decisions("deploy", "r2") == []


# -- broken policy files: refused unless their stages are known to leave ``start`` out -------------

UNPARSABLE = """
name: freeze
rules: [{id: x, kind: change_window
"""
INVALID_STAGES = """
name: freeze
stages: [strat]
rules:
  - {id: x, kind: change_window, freeze: [{start: 2000-01-01T00:00:00, end: 2999-01-01T00:00:00}]}
"""
NOT_A_MAPPING = """
- name: freeze
- stages: [gate]
"""
BROKEN_GATE_ONLY = """
name: gate-broken
stages: [gate, parse]
rules:
  - {id: x, kind: budget, scope: nowhere, limit: 1}
"""
BROKEN_DEFAULT_STAGE = """
name: default-broken
rules:
  - {id: x, kind: budget, scope: nowhere, limit: 1}
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (UNPARSABLE, "bad.yaml:3"),
        (INVALID_STAGES, "bad.yaml:3"),
        (NOT_A_MAPPING, "bad.yaml"),
    ],
    ids=["unparsable-yaml", "invalid-stages", "not-a-mapping"],
)
def test_a_broken_file_whose_stages_cannot_be_read_refuses_naming_file_and_line(
    tmp_path: Path, text: str, line: str
) -> None:
    policies = load_policy_set(_folder(tmp_path, bad=text, gate=GATE_ONLY))
    assert len(policies.broken) == 1
    result = run_preflight(_candidate(), policies, _never)
    assert not result.passed
    message = result.checks[-1].message
    assert "could not be loaded, failing closed" in message
    assert line in message


def test_a_policy_file_unreadable_at_pre_flight_refuses(tmp_path: Path) -> None:
    # Not UTF-8: the loader cannot read it, and neither can the pre-flight's look at its stages.
    (tmp_path / "latin.yaml").write_bytes("name: gel\u00e9e\nstages: [gate]\n".encode("latin-1"))
    policies = load_policy_set(tmp_path)
    result = run_preflight(_candidate(), policies, _never)
    assert not result.passed
    assert "latin.yaml" in result.checks[-1].message


def test_a_policy_file_gone_since_it_was_loaded_refuses(tmp_path: Path) -> None:
    # The scheduler's policy set is cached: the broken file may be gone (or unreadable) by the time
    # a run starts; what it held cannot be told, so the run is refused.
    policies = load_policy_set(_folder(tmp_path, bad=UNPARSABLE.replace("freeze", "x")))
    (tmp_path / "bad.yaml").unlink()
    result = run_preflight(_candidate(), policies, _never)
    assert not result.passed
    assert "bad.yaml" in result.checks[-1].message


@pytest.mark.parametrize(
    "text", [BROKEN_GATE_ONLY, BROKEN_DEFAULT_STAGE], ids=["gate-and-parse", "default-stage"]
)
def test_a_broken_file_whose_stages_leave_start_out_does_not_affect_pre_flight(
    tmp_path: Path, text: str
) -> None:
    policies = load_policy_set(_folder(tmp_path, broken=text))
    assert len(policies.broken) == 1
    result = run_preflight(_candidate(), policies, _never)
    assert result.passed, result.summary()
    assert result.checks[-1].message == "no start policy applies"


# -- the DAG's own budget (a YAML workflow's ``budget:``, carried in its default_args) -------------


def _own_budget(limit: float) -> str:
    from airflow_wfe.adapters.compile.gates import budget_policy
    from airflow_wfe.core.spec.models import WorkflowSpec

    spec = WorkflowSpec.model_validate(
        {
            "name": "deploy",
            "version": "1",
            "owner": "qa",
            "budget": {"per_month": limit, "currency": "EUR"},
            "steps": {"a": {"run": "m:f"}},
        }
    )
    text = budget_policy(spec)
    assert text is not None
    return text


def test_the_dags_own_budget_is_checked_at_pre_flight(tmp_path: Path) -> None:
    spent = {
        "run": 0.0,
        "dag_day": 12.5,
        "dag_month": 12.5,
        "currencies": {"run": [], "dag_day": ["EUR"], "dag_month": ["EUR"]},
    }
    refused = run_preflight(
        _candidate(own_policies=(_own_budget(10),)), load_policy_set(tmp_path), lambda: spent
    )
    assert not refused.passed
    assert (
        "deploy-budget/per-month: budget dag_month would be exceeded: spent 12.50 + reserved 0.00 "
        "of 10.00 EUR"
    ) in refused.checks[-1].message
    held = run_preflight(
        _candidate(own_policies=(_own_budget(100),)), load_policy_set(tmp_path), lambda: spent
    )
    assert held.passed
    assert held.checks[-1].message == "start policies allow (deploy-budget)"


def test_the_dags_own_budget_is_never_judged_on_another_currency(tmp_path: Path) -> None:
    spent = {
        "run": 0.0,
        "dag_day": 1.0,
        "dag_month": 1.0,
        "currencies": {"run": [], "dag_day": ["USD"], "dag_month": ["USD"]},
    }
    result = run_preflight(
        _candidate(own_policies=(_own_budget(100),)), load_policy_set(tmp_path), lambda: spent
    )
    assert not result.passed
    assert "this budget is in EUR but the ledger's dag_month spending is in USD" in (
        result.checks[-1].message
    )


def test_an_unreadable_own_budget_fails_closed(tmp_path: Path) -> None:
    result = run_preflight(_candidate(own_policies=("name: [",)), load_policy_set(tmp_path), _never)
    assert not result.passed
    assert "the DAG's own budget could not be read, failing closed" in result.checks[-1].message
    assert "DAG deploy (wfe_budget)" in result.checks[-1].message
