"""The shipped testing kit (airflow_wfe.testing): what a DAG author uses, tested as they would."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from airflow_wfe.app.runs import list_runs
from airflow_wfe.config import GOVERNED_TAG
from airflow_wfe.core.states import StepState
from airflow_wfe.exceptions import PolicyError
from airflow_wfe.testing import (
    RecordingEmitter,
    assert_compensated,
    assert_path,
    assert_run_state,
    assert_step_state,
    dry_run_policy,
    history,
    run_dag,
    temporary_store,
)

POLICY = """
name: spend
version: "1"
rules:
  - {id: per-run, kind: budget, scope: run, limit: 10}
  - id: prod
    when: 'run.params.env == "prod"'
    decision: needs_approval
    reason: production needs a person
"""


def test_temporary_store_points_the_process_at_a_fresh_store() -> None:
    before = os.environ.get("AIRFLOW__WFE__STORE_CONN")
    with temporary_store() as ctx:
        assert os.environ["AIRFLOW__WFE__STORE_CONN"].endswith("/wfe.db")
        assert isinstance(ctx.emitter, RecordingEmitter)
        assert list_runs(ctx).root == []
        ctx.recorder.run_started("etl", "r1", actor="scheduler", reason="go")
        ctx.recorder.step("etl", "r1", "load", StepState.RUNNING, actor="worker", try_number=1)
        ctx.recorder.step("etl", "r1", "load", StepState.SUCCEEDED, actor="worker", try_number=1)
        ctx.recorder.run_finished("etl", "r1", succeeded=True, actor="scheduler", reason="done")
        run = history(ctx, "etl", "r1")
        assert_run_state(run, "COMPLETED")
        assert_path(run, ["CREATED", "VALIDATED", "RUNNING", "COMPLETED"])
        assert_step_state(run, "load", "SUCCEEDED", path=["PENDING", "RUNNING", "SUCCEEDED"])
        assert_compensated(run, [])
        assert "wfe.run.state.completed" in ctx.emitter.names()
    assert os.environ.get("AIRFLOW__WFE__STORE_CONN") == before


def test_assertions_say_what_differs() -> None:
    with temporary_store() as ctx:
        ctx.recorder.run_started("etl", "r1", actor="scheduler", reason="go")
        ctx.recorder.step("etl", "r1", "a", StepState.RUNNING, actor="worker", try_number=1)
        ctx.recorder.step("etl", "r1", "a", StepState.SUCCEEDED, actor="worker", try_number=1)
        ctx.recorder.step("etl", "r1", "a", StepState.COMPENSATING, actor="worker", try_number=1)
        ctx.recorder.step("etl", "r1", "a", StepState.COMPENSATED, actor="worker", try_number=1)
        run = history(ctx, "etl", "r1")
    assert_compensated(run, ["a"])
    with pytest.raises(AssertionError, match="is RUNNING, expected COMPLETED"):
        assert_run_state(run, "COMPLETED")
    with pytest.raises(AssertionError, match="went CREATED -> VALIDATED -> RUNNING, expected"):
        assert_path(run, ["CREATED", "RUNNING"])
    with pytest.raises(AssertionError, match="no step 'b'"):
        assert_step_state(run, "b", "SUCCEEDED")
    with pytest.raises(AssertionError, match=r"compensated \['a'\], expected \[\]"):
        assert_compensated(run, [])


def test_dry_run_policy(tmp_path: Path) -> None:
    policy = tmp_path / "spend.yaml"
    policy.write_text(POLICY)
    dev = {"run": {"dag_id": "gen", "params": {"env": "dev"}}, "now": "2026-11-25T10:00:00Z"}
    assert dry_run_policy(policy, dev).decision == "allow"
    over = {**dev, "cost": {"reserve": 4, "spent": {"run": 7}}}
    decision = dry_run_policy(policy, over)
    assert decision.decision == "deny"
    assert [r.rule for r in decision.reasons] == ["per-run"]
    prod = dry_run_policy([policy], {"run": {"dag_id": "gen", "params": {"env": "prod"}}})
    assert prod.decision == "needs_approval"
    with pytest.raises(PolicyError):
        dry_run_policy(policy, {})
    with pytest.raises(FileNotFoundError):
        dry_run_policy(tmp_path / "missing.yaml")


def test_run_dag_runs_a_governed_dag_through_dag_test(airflow_db: None) -> None:
    from airflow.sdk import DAG, task

    with DAG(
        "wfe_testing_kit_tiny",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        tags=[GOVERNED_TAG],
        catchup=False,
    ) as dag:

        @task
        def extract() -> int:
            return 1

        @task
        def load(value: int) -> None:
            assert value == 1

        load(extract())

    with temporary_store() as ctx:
        run = run_dag(dag, ctx)
    assert_run_state(run, "COMPLETED")
    assert_path(run, ["CREATED", "VALIDATED", "RUNNING", "COMPLETED"])
    assert_step_state(run, "extract", "SUCCEEDED", path=["PENDING", "RUNNING", "SUCCEEDED"])
    assert_step_state(run, "load", "SUCCEEDED")
