"""A governed DAG whose run a person then changes by hand in Airflow (tests/integration/
test_audit_airflow_changes.py): ``a`` succeeds, ``b`` fails. Airflow DAG for the test suite only."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="wfe_t_changes",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["wfe", "test"],
):

    @task(retries=0)
    def a() -> None:
        return None

    @task(retries=0)
    def b() -> None:
        raise RuntimeError("b fails on purpose")

    a() >> b()
