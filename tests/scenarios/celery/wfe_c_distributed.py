"""Governed DAGs run together on CeleryExecutor (tests/integration/test_celery_cluster.py).

* ``wfe_c_saga_ok``: ``charge`` >> ``ship``, both succeed; ``charge`` declares a compensation that
  must not run.
* ``wfe_c_saga_fail``: ``charge`` succeeds, ``ship`` fails (no retries): the saga compensates
  ``charge`` (ledger line ``refund <key>``).
* ``wfe_c_gate_budget``: ``book`` spends 8, the gate reserves 5 under a per-run budget of 10: denied,
  ``expensive`` never runs, the run is REJECTED and ``book`` compensated (``unbook <result>``).
* ``wfe_c_worker_killed``: ``prepare`` >> ``long_step`` >> ``publish``. On its first try
  ``long_step`` writes ``started try=1 pid=P ancestors=A,B,..`` to the ledger and waits; the test SIGKILLs the
  Celery worker running it (its whole process group). The scheduler finds the task instance
  without a heartbeat and, a retry being left, another worker runs try 2, which returns at once.

Every effect goes to the ledger file named by ``WFE_TEST_LEDGER`` (shared by all workers: they run
on one machine in the test).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_wfe import compensate
from airflow_wfe.adapters.gates import PolicyGateOperator

RUN_BUDGET = """
name: run-budget
version: "1"
rules:
  - id: per-run
    kind: budget
    scope: run
    limit: 10
"""

#: How long try 1 of ``long_step`` waits to be killed before giving up (the test kills it first).
KILL_WAIT_S = 240.0


def _ledger(line: str) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path:
        raise RuntimeError("WFE_TEST_LEDGER is not set: nowhere to write the effect")
    with Path(path).open("a") as handle:
        handle.write(line + "\n")


def _ancestors() -> str:
    """This process's parent, grandparent, ... (from /proc), so the test sees which worker ran it."""
    chain, pid = [], os.getppid()
    while pid > 1:
        chain.append(str(pid))
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return ",".join(chain)


def refund(result: dict[str, Any], idempotency_key: str) -> None:
    _ledger(f"refund {result['amount']} {idempotency_key}")


def unbook(result: str, idempotency_key: str) -> None:
    _ledger(f"unbook {result}")


def _saga(dag_id: str, *, ship_fails: bool) -> None:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), tags=["wfe", "test"]):

        @task
        def charge() -> dict[str, Any]:
            _ledger(f"{dag_id} charge")
            return {"amount": 420}

        @task(retries=0)
        def ship(payment: dict[str, Any]) -> None:
            if ship_fails:
                raise RuntimeError("carrier refused the parcel")
            _ledger(f"{dag_id} shipped")

        payment = charge()
        ship(payment)
        compensate(payment, refund)


_saga("wfe_c_saga_ok", ship_fails=False)
_saga("wfe_c_saga_fail", ship_fails=True)


with DAG("wfe_c_gate_budget", schedule=None, start_date=datetime(2026, 1, 1), tags=["wfe", "test"]):

    @task
    def book() -> str:
        from airflow_wfe.adapters.task.cost import record_cost

        record_cost(8.0, detail="booking fee")
        _ledger("book")
        return "b1"

    @task
    def expensive() -> None:
        _ledger("expensive ran")

    booked = book()
    compensate(booked, unbook)
    gate = PolicyGateOperator(task_id="budget_gate", inline_policies=[RUN_BUDGET], reserve=5.0)
    booked >> gate >> expensive()


with DAG(
    "wfe_c_worker_killed", schedule=None, start_date=datetime(2026, 1, 1), tags=["wfe", "test"]
):

    @task
    def prepare() -> str:
        return "batch-7"

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def long_step(batch: str, ti: Any = None) -> str:
        try_number = int(ti.try_number)
        _ledger(f"started try={try_number} pid={os.getpid()} ancestors={_ancestors()}")
        if try_number == 1:
            time.sleep(KILL_WAIT_S)  # the test kills this task's Celery worker meanwhile
            raise RuntimeError("try 1 was not killed within the wait")
        _ledger(f"finished {batch} try={try_number}")
        return batch

    @task
    def publish(batch: str) -> None:
        _ledger(f"published {batch}")

    publish(long_step(prepare()))
