"""A release approved by two people (trigger it in the UI, approve under "Required actions").

The gate evaluates ``dags/policies/four_eyes.yaml``: two distinct approvers, never the user who
triggered the run; escalated to ``admin`` after 30 minutes; rejected after 4 hours without answers.
A small change (``change_size = small``) is approved automatically. Not run by ``make demo``: it
waits for people.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from airflow_wfe.adapters.gates import PolicyGateOperator


@dag(
    dag_id="wfe_approval_release",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example", "release"],
    params={"change_size": Param("large", enum=["small", "large"])},
    default_args={"owner": "release", "retries": 1, "retry_delay": timedelta(seconds=5)},
    doc_md=__doc__,
)
def wfe_approval_release() -> None:
    @task
    def build() -> str:
        return "web-2026.11.25"

    @task
    def deploy(version: str) -> None:
        print(f"deploying {version}")

    version = build()
    approval = PolicyGateOperator(
        task_id="approve_release",
        policies=["four-eyes", "release"],
        step={"risk": "high"},
        subject="Release web to production?",
    )
    version >> approval >> deploy(version)


wfe_approval_release()
