"""Governed sagas whose runs a person marks failed in Airflow while no step runs (real-scheduler
test).

``a`` succeeds (and declares a compensation); ``held`` then waits in the pool ``wfe_held``, which the
test creates with no slot, until someone marks the run failed through Airflow's REST API (or UI).
Airflow skips every pending task and fails none, so no step failed and the saga (teardown tasks,
which Airflow leaves to run) has nothing to compensate on its own. ``wfe_t_marked_failed`` is
compensated automatically (``a`` undone); ``wfe_t_marked_failed_opted_out`` opts out with the
``wfe:no-auto-compensation`` tag and stays FAILED. Each step and compensation writes to the ledger
named by ``WFE_TEST_LEDGER``.

Used by ``tests/integration/test_marked_failed_compensation.py`` only.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_wfe import compensate

#: A pool the test creates with no slot: a task in it is scheduled but never runs.
HELD_POOL = "wfe_held"


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
    ("wfe_t_marked_failed", ["wfe"]),
    ("wfe_t_marked_failed_opted_out", ["wfe", "wfe:no-auto-compensation"]),
):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=tags,
        default_args={"retries": 0},
    ):

        @task
        def a() -> str:
            _write("do a")
            return "a done"

        @task(pool=HELD_POOL)
        def held(previous: str) -> str:
            return "never: the pool has no slot"

        done_a = a()
        held(done_a)
        compensate(done_a, undo_a)
