"""A governed saga whose failure happens while a parallel branch is still running (real executor).

``provision`` → (``slow_branch``, ``fast_fail``), retries 0. The two branches meet in the ledger file
named by ``WFE_TEST_LEDGER``, one line per event, ``<event> at=<time.time()> pid=<pid> ...``:

* ``slow_branch`` writes ``start slow``, waits (up to ~30 s) until the ledger shows ``fast_fail
  failed`` and Airflow reports ``fast_fail`` failed (``airflow saw fast_fail failed``), sleeps 2 more
  seconds, then writes ``end slow`` and succeeds;
* ``fast_fail`` writes ``start fast``, waits (up to ~30 s) until the ledger shows ``start slow`` (so
  the slow branch is running for sure), writes ``fast_fail failed`` and raises.

Each waits for the other, so with tasks run one at a time (``dag.test()``, a SequentialExecutor) the
lines come out of order and the test says so. Every step declares a compensation that appends
``undo <step>`` with its idempotency key and the step's result; the saga must undo ``slow_branch``
then ``provision``, after ``end slow``, and never ``fast_fail``.

Used by ``tests/integration/test_saga_inflight_branch.py`` only, through a LocalExecutor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_wfe import compensate

DAG_ID = "wfe_t_saga_inflight_branch"
#: How long each branch waits for the other before giving up (the test then fails on the order).
WAIT_S = 30.0
#: How long the slow branch keeps running after it saw the failure.
LINGER_S = 2.0


def _ledger() -> Path:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path:
        raise RuntimeError("WFE_TEST_LEDGER is not set: nowhere to write the ledger")
    return Path(path)


def _write(event: str, **fields: Any) -> None:
    extra = "".join(f" {key}={value}" for key, value in fields.items())
    with _ledger().open("a") as handle:
        handle.write(f"{event} at={time.time():.6f} pid={os.getpid()}{extra}\n")


def _seen(event: str) -> bool:
    ledger = _ledger()
    if not ledger.is_file():
        return False
    return any(line.startswith(f"{event} at=") for line in ledger.read_text().splitlines())


def _wait(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _airflow_saw_fast_fail_failed(ti: Any) -> bool:
    count = ti.get_ti_count(
        dag_id=ti.dag_id, task_ids=["fast_fail"], run_ids=[ti.run_id], states=["failed"]
    )
    return int(count) > 0


def undo(step: str) -> Callable[..., str]:
    def compensation(result: Any, idempotency_key: str, ti: Any) -> str:
        _write(f"undo {step}", key=idempotency_key, result=result, try_number=ti.try_number)
        return f"undid {step}"

    compensation.__name__ = f"undo_{step}"
    return compensation


with DAG(
    DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe"],
    max_active_tasks=8,
    default_args={"retries": 0, "retry_delay": timedelta(seconds=1)},
):

    @task
    def provision() -> str:
        _write("provisioned")
        return "host-1"

    @task
    def slow_branch(host: str, ti: Any = None) -> str:
        _write("start slow")
        # The ledger line is written just before the raise: also wait for Airflow's verdict.
        if _wait(lambda: _seen("fast_fail failed")) and _wait(
            lambda: _airflow_saw_fast_fail_failed(ti)
        ):
            _write("airflow saw fast_fail failed")
        time.sleep(LINGER_S)
        _write("end slow")
        return f"warm-cache-on-{host}"

    @task
    def fast_fail(host: str) -> None:
        _write("start fast")
        _wait(lambda: _seen("start slow"))
        _write("fast_fail failed")
        raise RuntimeError(f"smoke test failed on {host}")

    hosts = provision()
    slow = slow_branch(hosts)
    broken = fast_fail(hosts)
    compensate(hosts, by=undo("provision"))
    compensate(slow, by=undo("slow_branch"))
    compensate(broken, by=undo("fast_fail"))
