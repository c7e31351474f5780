"""The YAML data pipeline (``dags/workflows/wfe_example_yaml_data_pipeline.yaml``) through a real
scheduler: good data is published; bad data is denied at the Great Expectations gate and nothing is
published; a failure after publishing is compensated and the published file is gone again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster import Cluster
from example_cluster import example_folder, outcomes, trigger

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

DAG_ID = "wfe_example_yaml_data_pipeline"
FILES = [
    "workflows.py",
    "workflows/wfe_example_yaml_data_pipeline.yaml",
    "workflows/pipeline_steps.py",
]


def test_data_pipeline_publishes_denies_and_unpublishes(tmp_path: Path) -> None:
    dags = example_folder(tmp_path, FILES)
    with Cluster.running(tmp_path, dags=dags, deadline_s=400.0) as cluster:
        published = cluster.home / "wfe-demo-data" / "published"
        cluster.login()
        runs = {
            "good": trigger(cluster, DAG_ID, {}),
            "bad": trigger(cluster, DAG_ID, {"bad_rows": 3}),
            "late": trigger(cluster, DAG_ID, {"fail_after_publish": True}),
        }
        states = {}
        for name, run_id in runs.items():
            airflow = cluster.wait_run_finished(DAG_ID, run_id)
            states[name] = (airflow["state"], cluster.show_run(DAG_ID, run_id))

        def file_of(run_id: str) -> Path:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
            return published / f"orders-{safe}.json"

        def as_told() -> None:
            airflow, record = states["good"]
            assert (airflow, record["state"]) == ("success", "COMPLETED"), record["state"]
            assert outcomes(record) == {"quality__extract": ["allow"]}
            assert json.loads(file_of(runs["good"]).read_text())["orders"] == 50

            airflow, record = states["bad"]
            assert (airflow, record["state"]) == ("failed", "REJECTED"), record["state"]
            assert outcomes(record) == {"quality__extract": ["deny"]}
            steps = {s["step_id"]: s["state"] for s in record["steps"]}
            assert steps.get("publish") != "SUCCEEDED", steps
            assert not file_of(runs["bad"]).exists()

            airflow, record = states["late"]
            assert (airflow, record["state"]) == ("failed", "COMPENSATED"), record["state"]
            assert [c["step_id"] for c in record["compensations"]] == ["publish"]
            assert not file_of(runs["late"]).exists()

        cluster.verify(as_told, *(json.dumps(r[1])[:2000] for r in states.values()))
