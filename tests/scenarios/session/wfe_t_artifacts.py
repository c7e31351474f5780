"""A governed DAG whose task reads a versioned artifact; the run records which version it used."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("wfe_t_artifacts", schedule=None, start_date=datetime(2026, 1, 1), tags=["wfe", "test"]):

    @task
    def render_prompt() -> str:
        from airflow_wfe.adapters.task.artifacts import use_artifact

        template = use_artifact("prompts/greeting").decode()
        return template.format(name="auditor")

    render_prompt()
