"""A governed saga whose steps all succeed, compensated afterwards by hand (real-scheduler test).

``a`` → ``b``, both succeed (no retries), both declare a compensation. Nothing fails, so the saga
tasks skip and the run COMPLETES; ``wfe compensate --force`` then clears the saga tasks and the
scheduler runs them again, which undoes ``b`` then ``a``. Every forward step writes ``do <step>`` and
every compensation ``undo <step> <idempotency_key>`` to the ledger file named by ``WFE_TEST_LEDGER``,
so the test sees what ran and in which order.

Used by ``tests/integration/test_manual_compensation.py`` only: the manual request goes through
Airflow's scheduler, which ``dag.test()`` does not have.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_wfe import compensate

DAG_ID = "wfe_t_saga_manual_compensation"


def _write(line: str) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path:
        raise RuntimeError("WFE_TEST_LEDGER is not set: no ledger to write to")
    with Path(path).open("a") as handle:
        handle.write(line + "\n")


def undo_a(idempotency_key: str) -> str:
    _write(f"undo a {idempotency_key}")
    return "a undone"


def undo_b(idempotency_key: str) -> str:
    _write(f"undo b {idempotency_key}")
    return "b undone"


with DAG(
    DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe"],
    default_args={"retries": 0, "retry_delay": timedelta(seconds=1)},
):

    @task
    def a() -> str:
        _write("do a")
        return "a done"

    @task
    def b(previous: str) -> str:
        _write("do b")
        return "b done"

    done_a = a()
    done_b = b(done_a)
    compensate(done_a, undo_a)
    compensate(done_b, undo_b)
