"""Time running out reads as such: a step past its execution_timeout is recorded TIMED_OUT (not
Airflow's "Timeout, PID: 18077"), through real Airflow (``dag.test``)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_wfe.adapters.listeners.mapping import run_end_reason
from airflow_wfe.testing import run_dag, temporary_store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


def _sleep() -> None:
    time.sleep(30)


def _slow_dag() -> Any:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    with DAG(
        dag_id="wfe_t_step_timeout",
        start_date=datetime(2026, 1, 1),
        schedule=None,
        tags=["wfe"],
    ) as dag:
        PythonOperator(
            task_id="slow",
            python_callable=_sleep,
            execution_timeout=timedelta(seconds=1),
            retries=0,
        )
    return dag


def test_a_step_past_its_execution_timeout_is_recorded_timed_out(airflow_db: None) -> None:
    with temporary_store() as ctx:
        started = time.monotonic()
        run = run_dag(_slow_dag(), ctx)
        assert time.monotonic() - started < 25
    step = next(s for s in run.steps if s.step_id == "slow")
    assert step.state == "FAILED"
    reason = step.transitions[-1].reason or ""
    assert reason == (
        "TIMED_OUT: the task ran past its execution_timeout of 0:00:01 and was stopped"
    )
    assert "PID" not in reason


def test_a_run_past_its_dagrun_timeout_reads_timed_out() -> None:
    assert run_end_reason("timed_out").startswith("TIMED_OUT: the run exceeded its dagrun_timeout")
