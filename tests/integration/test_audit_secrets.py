"""Secrets never reach the store: not the state tables, not the audit trail.

A real governed run (``dag.test``) reads a connection password, a variable with a sensitive name and a
run parameter named like a password, and then fails with an error message that contains all three:
the worst case, a task that leaks its secrets into the failure the harness records.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from airflow_wfe.config import get_settings
from airflow_wfe.engine.harness import get_runtime_store, reset_runtime
from airflow_wfe.store.engine import get_engine
from airflow_wfe.store.tables import metadata

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

CONNECTION_PASSWORD = "conn-pass-7Hq2Zx91"
VARIABLE_SECRET = "var-secret-Lk82Mz55"
PARAM_SECRET = "param-secret-Qw34Er67"


def test_a_leaky_task_leaves_no_secret_in_the_store(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_WFE_SECRET_DB",
        json.dumps(
            {"conn_type": "generic", "login": "etl", "password": CONNECTION_PASSWORD, "host": "db"}
        ),
    )
    monkeypatch.setenv("AIRFLOW_VAR_WFE_API_SECRET", VARIABLE_SECRET)
    reset_runtime()
    dag_run = dagbag.get_dag("wfe_t_secrets").test(run_conf={"db_password": PARAM_SECRET})
    assert dag_run.state == "failed"

    store = get_runtime_store()
    record = store.get_run("wfe_t_secrets", dag_run.run_id)
    (leak,) = [s for s in record.steps if s.step_id == "leak"]
    failure = leak.transitions[-1]
    assert failure.to_state == "FAILED"
    assert "cannot log in: password=***" in (failure.reason or "")  # the failure itself is kept

    # Every table, read straight from the database: what an attacker with a dump would see.
    with get_engine(get_settings().store_conn).connect() as connection:
        dump = "\n".join(
            str(value)
            for table in metadata.sorted_tables
            for row in connection.execute(select(table))
            for value in row
        )
    assert "wfe_t_secrets" in dump  # the dump is of the right store
    for secret in (CONNECTION_PASSWORD, VARIABLE_SECRET, PARAM_SECRET):
        assert secret not in dump, f"{secret} reached the store"
