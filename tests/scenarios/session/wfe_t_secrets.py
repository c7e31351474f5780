"""A governed DAG whose task touches three kinds of secret and then leaks all of them in its error.

Used by tests/integration/test_audit_secrets.py: a connection password, a variable with a sensitive
name and a run parameter named like a password. Airflow DAG for the test suite only.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, BaseHook, Variable, task

with DAG(
    dag_id="wfe_t_secrets",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["wfe", "test"],
    params={"db_password": "placeholder"},
):

    @task(retries=0)
    def leak(params: dict[str, str] | None = None) -> None:
        password = BaseHook.get_connection("wfe_secret_db").password
        token = Variable.get("wfe_api_secret")
        param = (params or {})["db_password"]
        raise RuntimeError(f"cannot log in: password={password} token={token} param={param}")

    leak()
