"""DAGs for the metrics tests: a deployment that retries once and succeeds, one that is rolled back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task

from airflow_wfe import compensate


@dag(
    dag_id="wfe_m_deploy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "deployment"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
)
def wfe_m_deploy() -> None:
    @task
    def build() -> str:
        from airflow_wfe import record_business_metric

        record_business_metric("cost", 1.5, unit="EUR")
        return "v42"

    @task
    def rollout(version: str) -> str:
        if get_current_context()["ti"].try_number == 1:
            raise ConnectionError("registry answered 503")
        return version

    @task
    def verify(version: str) -> None:
        from airflow_wfe import record_business_metric

        record_business_metric("roi", 0.25, unit="ratio")

    verify(rollout(build()))


def undo_release(result: str, idempotency_key: str) -> str:
    return "undone"


@dag(
    dag_id="wfe_m_rollback",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "deployment"],
    default_args={"retries": 0},
)
def wfe_m_rollback() -> None:
    @task
    def release() -> str:
        return "v43"

    @task
    def smoke_test(version: str) -> None:
        raise RuntimeError(f"smoke test of {version} failed")

    released: Any = release()
    smoke_test(released)
    compensate(released, undo_release)


wfe_m_deploy()
wfe_m_rollback()
