"""A run pins the artifact versions active at its start (a rollback mid-run applies to later runs),
``wfe runs show`` lists them, and ``wfe artifacts show`` lists the runs that used each version;
through real Airflow (``dag.test``)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import pytest

from airflow_wfe.app.artifacts import artifact_history
from airflow_wfe.cli.artifacts import render_artifact
from airflow_wfe.cli.text import render_run
from airflow_wfe.testing import run_dag, temporary_store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

NAME = "prompts/pinned"


def _read_then_roll_back() -> str:
    from airflow_wfe.adapters.task.artifacts import use_artifact
    from airflow_wfe.engine.harness import get_runtime_store
    from airflow_wfe.exceptions import ArtifactError

    text = use_artifact(NAME).decode()
    with contextlib.suppress(ArtifactError):  # the second run finds nothing left to roll back to
        get_runtime_store().artifacts.rollback(NAME, actor="test", reason="rolled back mid-run")
    return text


def _read_again() -> str:
    from airflow_wfe.adapters.task.artifacts import use_artifact

    return use_artifact(NAME).decode()


def _dag() -> Any:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    with DAG(
        dag_id="wfe_t_artifact_pinning",
        start_date=datetime(2026, 1, 1),
        schedule=None,
        tags=["wfe"],
    ) as dag:
        first = PythonOperator(task_id="first", python_callable=_read_then_roll_back)
        second = PythonOperator(task_id="second", python_callable=_read_again)
        first >> second
    return dag


def test_a_rollback_mid_run_applies_to_later_runs_only(airflow_db: None) -> None:
    with temporary_store() as ctx:
        registry = ctx.store.artifacts
        v1 = registry.register(NAME, b"one", actor="test").version
        registry.activate(NAME, v1, actor="test")
        v2 = registry.register(NAME, b"two", actor="test").version
        registry.activate(NAME, v2, actor="test")

        run = run_dag(_dag(), ctx)
        assert run.state == "COMPLETED"
        # The first task rolled back to v1; the second still read v2, pinned at the run's start.
        assert [(a.name, a.version) for a in run.artifacts] == [(NAME, v2)]
        assert registry.active(NAME).version == v1
        assert f"{NAME} @ {v2}" in render_run(run)

        later = run_dag(_dag(), ctx)  # starts after the rollback: pinned to v1
        assert later.state == "COMPLETED"
        assert [(a.name, a.version) for a in later.artifacts] == [(NAME, v1)]

        history = artifact_history(ctx, NAME)
        assert [(r.run_id, r.version) for r in history.runs] == [
            (run.run_id, v2),
            (later.run_id, v1),
        ]
        text = render_artifact(history)
        assert "Runs that used it (2)" in text
        assert run.run_id in text
        assert later.run_id in text
