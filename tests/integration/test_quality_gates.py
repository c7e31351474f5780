"""Data-quality gates through real Airflow (``dag.test()``) and Great Expectations 1.x: a DataFrame,
an upstream task's records, a SQLite table through an Airflow connection and a CSV file checked
against a GX suite file; bad data is denied with the failing expectations named, good data allowed,
``warn`` lets the run go on with the warning recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

pytest.importorskip("great_expectations", reason="the quality gate needs airflow-wfe[quality]")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("WFE_TEST_LEDGER", str(path))
    reset_runtime()
    return path


def _published(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def _denied(dagbag: Any, dag_id: str, ledger: Path, **test_kwargs: Any) -> Any:
    dag_run = dagbag.get_dag(dag_id).test(**test_kwargs)
    assert dag_run.state == "failed"
    assert _published(ledger) == []
    store = get_runtime_store()
    (decision,) = store.decisions(dag_id, dag_run.run_id)
    assert decision.kind == "quality"
    assert decision.outcome == "deny"
    assert store.get_run(dag_id, dag_run.run_id).state == "REJECTED"
    return decision


def _messages(decision: Any) -> list[str]:
    return [r["message"] for r in decision.reasons]


def test_a_dataframe_that_breaks_the_expectations_is_denied(dagbag: Any, ledger: Path) -> None:
    decision = _denied(dagbag, "wfe_t_quality_frame_bad", ledger)
    assert _messages(decision) == [
        "expect_column_values_to_not_be_null(column='order_id'): 1 of 2 values unexpected, "
        "e.g. None",
        "expect_column_values_to_be_between(column='amount', min_value=0.0, max_value=1000.0): "
        "1 of 2 values unexpected, e.g. 5000.0",
    ]
    assert [r["rule"] for r in decision.reasons] == [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
    ]
    assert decision.details["rows"] == 2
    assert decision.details["failed"] == 2


def test_data_that_meets_the_expectations_flows_on(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_quality_frame_ok").test()
    assert dag_run.state == "success"
    assert _published(ledger) == ["wfe_t_quality_frame_ok published"]
    store = get_runtime_store()
    (decision,) = store.decisions("wfe_t_quality_frame_ok", dag_run.run_id)
    assert decision.outcome == "allow"
    assert store.get_run("wfe_t_quality_frame_ok", dag_run.run_id).state == "COMPLETED"


def test_warn_records_the_failures_and_lets_the_run_go_on(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_quality_frame_warn").test()
    assert dag_run.state == "success"
    assert _published(ledger) == ["wfe_t_quality_frame_warn published"]
    store = get_runtime_store()
    (decision,) = store.decisions("wfe_t_quality_frame_warn", dag_run.run_id)
    assert decision.outcome == "warn"
    assert len(decision.reasons) == 2
    assert store.get_run("wfe_t_quality_frame_warn", dag_run.run_id).state == "COMPLETED"


def test_an_upstream_tasks_records_are_checked(dagbag: Any, ledger: Path) -> None:
    decision = _denied(dagbag, "wfe_t_quality_records", ledger)
    assert decision.details["source"] == "result of extract"


def test_a_sqlite_table_through_an_airflow_connection(
    dagbag: Any, ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE orders (order_id INTEGER, amount REAL)")
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?)", [(1, 10.0), (2, -3.0), (None, 7.0)]
        )
    monkeypatch.setenv(
        "AIRFLOW_CONN_WFE_T_SHOP", json.dumps({"conn_type": "sqlite", "host": str(database)})
    )
    decision = _denied(dagbag, "wfe_t_quality_table", ledger)
    assert decision.details["source"] == "wfe_t_shop: orders"
    assert decision.details["rows"] == 3
    assert "e.g. -3.0" in _messages(decision)[1]


def test_a_csv_file_against_a_gx_suite_file(dagbag: Any, ledger: Path, tmp_path: Path) -> None:
    csv = tmp_path / "orders.csv"
    csv.write_text("order_id,amount\n1,10\n2,20\n3,\n")
    suite = tmp_path / "orders.json"
    suite.write_text(
        json.dumps(
            {
                "name": "orders",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
                ],
            }
        )
    )
    decision = _denied(
        dagbag, "wfe_t_quality_csv", ledger, run_conf={"csv": str(csv), "suite": str(suite)}
    )
    assert decision.details["source"] == f"file {csv}"
    assert _messages(decision) == [
        "expect_column_values_to_not_be_null(column='amount'): 1 of 3 values unexpected, e.g. None"
    ]


def test_a_yaml_quality_key_checks_the_steps_result_before_its_dependants(
    dagbag: Any, ledger: Path
) -> None:
    dag = dagbag.get_dag("wfe_t_yaml_quality")
    assert dag.get_task("load").upstream_task_ids == {"quality__extract"}
    assert dag.get_task("quality__extract").upstream_task_ids == {"extract"}
    decision = _denied(dagbag, "wfe_t_yaml_quality", ledger)
    assert decision.step_id == "quality__extract"
    assert decision.details["source"] == "result of extract"
    assert [r["rule"] for r in decision.reasons] == [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
    ]


def test_the_data_pipeline_example_publishes_good_data_and_stops_bad_data(
    dagbag: Any, ledger: Path
) -> None:
    import os

    published = Path(os.environ["AIRFLOW_HOME"]) / "wfe-demo-data" / "published"
    dag = dagbag.get_dag("wfe_example_yaml_data_pipeline")
    good = dag.test()
    assert good.state == "success"
    store = get_runtime_store()
    assert store.get_run(dag.dag_id, good.run_id).state == "COMPLETED"
    (decision,) = store.decisions(dag.dag_id, good.run_id)
    assert decision.outcome == "allow"
    assert decision.details["checked"] == 5
    files = sorted(published.glob("orders-*.json"))
    assert len(files) == 1
    for file in files:
        file.unlink()

    bad = dag.test(run_conf={"bad_rows": 3})
    assert bad.state == "failed"
    assert store.get_run(dag.dag_id, bad.run_id).state == "REJECTED"
    (denied,) = store.decisions(dag.dag_id, bad.run_id)
    assert [r["rule"] for r in denied.reasons] == [  # GX's uniqueness ignores the nulls
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
    ]
    assert "3 of 53 values unexpected" in denied.reasons[0]["message"]
    assert not list(published.glob("orders-*.json"))
