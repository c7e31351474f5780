"""Data-quality gates on Great Expectations (tests/integration/test_quality_gates.py).

Each DAG: data >> quality gate >> ``publish``. The data breaks the expectations, or meets them:
a DataFrame made by the gate's own function (``@quality_gate``), an upstream task's records, a
SQLite table through an Airflow connection (``wfe_t_shop``, set by the test), a CSV file (its path
in the run's conf). Airflow DAGs for the test suite only.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_wfe import QualityGateOperator, quality_gate

ORDERS = [
    {"expect_column_values_to_not_be_null": {"column": "order_id"}},
    {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0, "max_value": 1000}},
]


def _published(dag_id: str) -> None:
    ledger = os.environ.get("WFE_TEST_LEDGER")
    if ledger:
        with Path(ledger).open("a") as file:
            file.write(f"{dag_id} published\n")


def _frame_dag(dag_id: str, rows: list[dict[str, object]], severity: str) -> None:
    with DAG(dag_id=dag_id, start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe", "test"]):

        @quality_gate(expectations=ORDERS, severity=severity)
        def orders_ok() -> Any:
            import pandas as pd

            return pd.DataFrame.from_records(rows)

        @task
        def publish() -> None:
            _published(dag_id)

        orders_ok() >> publish()


GOOD = [{"order_id": 1, "amount": 10.0}, {"order_id": 2, "amount": 20.0}]
BAD = [{"order_id": 1, "amount": 10.0}, {"order_id": None, "amount": 5000.0}]
_frame_dag("wfe_t_quality_frame_ok", GOOD, "deny")
_frame_dag("wfe_t_quality_frame_bad", BAD, "deny")
_frame_dag("wfe_t_quality_frame_warn", BAD, "warn")

with DAG(
    dag_id="wfe_t_quality_records", start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe"]
):

    @task
    def extract() -> list[dict[str, object]]:
        return BAD

    @task
    def publish_records() -> None:
        _published("wfe_t_quality_records")

    gate = QualityGateOperator(task_id="records_ok", data_from="extract", expectations=ORDERS)
    extract() >> gate >> publish_records()

with DAG(
    dag_id="wfe_t_quality_table", start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe"]
):

    @task
    def publish_table() -> None:
        _published("wfe_t_quality_table")

    (
        QualityGateOperator(
            task_id="table_ok", conn_id="wfe_t_shop", table="orders", expectations=ORDERS
        )
        >> publish_table()
    )

with DAG(
    dag_id="wfe_t_quality_csv",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={"csv": "", "suite": ""},
    tags=["wfe"],
):

    @task
    def publish_csv() -> None:
        _published("wfe_t_quality_csv")

    (
        QualityGateOperator(
            task_id="csv_ok", path="{{ params.csv }}", suite="{{ params.suite }}", expectations=()
        )
        >> publish_csv()
    )
