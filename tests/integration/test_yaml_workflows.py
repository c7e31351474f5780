"""YAML workflows compiled by ``load_workflows`` and run through a real Airflow (``dag.test()``)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


def _steps(dag_run: Any) -> dict[str, Any]:
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    return {
        s.step_id if s.map_index < 0 else f"{s.step_id}[{s.map_index}]": s for s in record.steps
    }


def test_one_call_loads_every_valid_workflow_and_skips_the_broken_one(dagbag: Any) -> None:
    ids = set(dagbag.dag_ids)
    assert {
        "wfe_example_yaml_etl",
        "wfe_t_yaml_retry",
        "wfe_t_yaml_non_retryable",
        "wfe_t_yaml_fan_out",
    } <= ids
    assert "wfe_t_yaml_broken" not in ids
    assert not dagbag.import_errors


def test_compiled_dag_carries_the_spec(dagbag: Any) -> None:
    dag = dagbag.get_dag("wfe_t_yaml_retry")
    assert "wfe" in dag.tags
    flaky = dag.get_task("flaky")
    assert flaky.retries == 2
    assert flaky.retry_delay == timedelta(seconds=1)
    assert flaky.retry_exponential_backoff == 2
    assert flaky.max_retry_delay == timedelta(seconds=30)
    assert dag.default_args["owner"] == "qa"
    fan_out = dagbag.get_dag("wfe_t_yaml_fan_out")
    assert fan_out.dagrun_timeout == timedelta(minutes=10)
    assert fan_out.max_active_tasks == 4
    assert fan_out.get_task("square_from").max_active_tis_per_dagrun == 2


def test_retries_with_exponential_backoff(dagbag: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_yaml_retry").test()
    assert dag_run.state == "success"
    flaky = _steps(dag_run)["flaky"]
    assert [(t.to_state, t.try_number) for t in flaky.transitions] == [
        ("PENDING", 1), ("RUNNING", 1), ("RETRYING", 1), ("RUNNING", 2), ("RETRYING", 2),
        ("RUNNING", 3), ("SUCCEEDED", 3),
    ]  # fmt: skip
    retry_at = [t.at for t in flaky.transitions if t.to_state == "RETRYING"]
    rerun_at = [t.at for t in flaky.transitions if t.to_state == "RUNNING"][1:]
    gaps = [(run - failed).total_seconds() for failed, run in zip(retry_at, rerun_at, strict=True)]
    # Airflow's backoff: ceil(1s * 2**(try-1)) plus up to the same again as jitter.
    assert gaps[0] >= 1.0, gaps
    assert gaps[1] >= 2.0, gaps


def test_a_non_retryable_error_fails_at_once(dagbag: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_yaml_non_retryable").test()
    assert dag_run.state == "failed"
    steps = _steps(dag_run)
    failing = steps["validate_input"]
    assert [(t.to_state, t.try_number) for t in failing.transitions] == [
        ("PENDING", 1), ("RUNNING", 1), ("FAILED", 1),
    ]  # fmt: skip
    assert "ValueError: bad input" in (failing.transitions[-1].reason or "")
    assert steps["after"].state == "UPSTREAM_FAILED"


def test_fan_out_from_a_result_and_over_a_literal_list(dagbag: Any) -> None:
    dag_run = dagbag.get_dag("wfe_t_yaml_fan_out").test()
    assert dag_run.state == "success"
    steps = _steps(dag_run)
    assert {k for k in steps if k.startswith("square_from[")} == {
        f"square_from[{i}]" for i in range(4)
    }
    assert {k for k in steps if k.startswith("square_literal[")} == {
        "square_literal[0]",
        "square_literal[1]",
    }
    total = dag_run.get_task_instance("total")
    assert total.xcom_pull(task_ids="total") == 1 + 4 + 9 + 16


def test_each_run_records_spec_version_hash_and_dag_version(dagbag: Any) -> None:
    from airflow_wfe.core.spec.loader import load_spec

    dag = dagbag.get_dag("wfe_example_yaml_etl")
    dag_run = dag.test()
    assert dag_run.state == "success"
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    loaded = load_spec(dag.fileloc.replace("workflows.py", "workflows/wfe_example_yaml_etl.yaml"))
    canonical = json.dumps(
        loaded.spec.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    assert record.spec_version == "1.0.0"
    assert record.spec_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert record.dag_version_id
    assert record.state == "COMPLETED"
    assert len([s for s in record.steps if s.step_id == "transform"]) == 3
