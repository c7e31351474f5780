"""Governed sagas whose runs Airflow fails for their ``dagrun_timeout`` (real-scheduler test).

``a`` succeeds (and declares a compensation), then ``slow`` sleeps far past the run's 30-second
``dagrun_timeout`` (long enough for ``a`` to start and end on a loaded machine: at 10 s, a load of
18 once had the run time out before ``a`` started, leaving nothing to compensate): the scheduler fails the run with no failed step. ``wfe_t_run_timeout`` is
compensated automatically (``a`` undone); ``wfe_t_run_timeout_manual`` opts out with the
``wfe:no-auto-compensation`` tag and ends FAILED. Each step and compensation writes to the ledger
named by ``WFE_TEST_LEDGER``.

Used by ``tests/integration/test_run_timeout_compensation.py`` only.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_wfe import compensate


def _write(line: str) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path:
        raise RuntimeError("WFE_TEST_LEDGER is not set: no ledger to write to")
    with Path(path).open("a") as handle:
        handle.write(line + "\n")


def undo_a(idempotency_key: str) -> str:
    _write(f"undo a {idempotency_key}")
    return "a undone"


for dag_id, tags in (
    ("wfe_t_run_timeout", ["wfe"]),
    ("wfe_t_run_timeout_manual", ["wfe", "wfe:no-auto-compensation"]),
):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=tags,
        dagrun_timeout=timedelta(seconds=30),
        default_args={"retries": 0},
    ):

        @task
        def a() -> str:
            _write("do a")
            return "a done"

        @task
        def slow(previous: str) -> str:
            time.sleep(300)
            return "never"

        done_a = a()
        slow(done_a)
        compensate(done_a, undo_a)
