"""Governed DAGs with compensations (sagas), for the compensation tests.

Each compensation appends to the test ledger with its idempotency key, so the tests can check what
was undone, in which order, and that nothing was undone twice.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import saga_ledger
from airflow.sdk import DAG, task

from airflow_wfe import compensate, irreversible

START = datetime(2026, 1, 1)
ARGS = {"retries": 0, "retry_delay": timedelta(seconds=1)}


def undo(name: str):  # type: ignore[no-untyped-def]
    def compensation(result: Any, idempotency_key: str, ti: Any) -> str:
        saga_ledger.write(
            "undo", step=name, result=result, key=idempotency_key, try_number=ti.try_number
        )
        return f"undid {name}"

    compensation.__name__ = f"undo_{name}"
    return compensation


def undo_flaky_once(result: Any, idempotency_key: str, ti: Any) -> None:
    saga_ledger.write("undo-attempt", step="charge", key=idempotency_key, try_number=ti.try_number)
    if ti.try_number == 1:
        raise ConnectionError("payment API timed out while refunding")
    saga_ledger.write("undo", step="charge", key=idempotency_key, try_number=ti.try_number)


def undo_always_fails(result: Any, idempotency_key: str) -> None:
    raise RuntimeError("refund endpoint is gone")


def make_saga(dag_id: str, *, fail: bool, charge_undo: Any, undo_retries: int = 0) -> DAG:
    with DAG(
        dag_id, schedule=None, start_date=START, tags=["wfe", "test"], default_args=ARGS
    ) as dag:

        @task
        def reserve() -> str:
            saga_ledger.write("do", step="reserve")
            return "seat-12A"

        @task
        def charge(seat: str) -> dict[str, Any]:
            saga_ledger.write("do", step="charge")
            return {"seat": seat, "amount": 420}

        @task
        def ship(payment: dict[str, Any]) -> None:
            saga_ledger.write("do", step="ship")
            if fail:
                raise RuntimeError("carrier refused the parcel")

        seat = reserve()
        payment = charge(seat)
        ship(payment)
        compensate(seat, undo("reserve"))
        compensate(payment, charge_undo, retries=undo_retries, retry_delay=timedelta(seconds=1))
    return dag


linear_fail = make_saga("wfe_t_saga_linear", fail=True, charge_undo=undo("charge"))
linear_ok = make_saga("wfe_t_saga_success", fail=False, charge_undo=undo("charge"))
retry_once = make_saga(
    "wfe_t_saga_undo_retry", fail=True, charge_undo=undo_flaky_once, undo_retries=1
)
fails_for_good = make_saga("wfe_t_saga_undo_fails", fail=True, charge_undo=undo_always_fails)


with DAG(
    "wfe_t_saga_diamond", schedule=None, start_date=START, tags=["wfe", "test"], default_args=ARGS
):

    @task
    def provision() -> list[str]:
        saga_ledger.write("do", step="provision")
        return ["a", "b"]

    @task
    def configure(host: str) -> str:
        saga_ledger.write("do", step="configure", host=host)
        return f"configured-{host}"

    @task
    def slow_branch() -> str:
        time.sleep(2)
        saga_ledger.write("do", step="slow_branch")
        return "warm cache"

    @task
    def failing_branch() -> None:
        saga_ledger.write("do", step="failing_branch")
        raise ValueError("smoke test failed")

    @task
    def announce() -> None:
        saga_ledger.write("do", step="announce")

    hosts = provision()
    configured = configure.expand(host=hosts)
    slow = slow_branch()
    broken = failing_branch()
    configured >> [slow, broken]
    [slow, broken] >> announce()
    compensate(hosts, undo("provision"))
    compensate(configured, undo("configure"))
    compensate(slow, undo("slow_branch"))
    compensate(broken, undo("failing_branch"))


with DAG(
    "wfe_t_saga_irreversible",
    schedule=None,
    start_date=START,
    tags=["wfe", "test"],
    default_args=ARGS,
):

    @task
    def stage() -> str:
        return "staged"

    @task
    def email_customers(staged: str) -> str:
        saga_ledger.write("do", step="email_customers")
        return "sent"

    @task
    def finalize(sent: str) -> None:
        raise RuntimeError("finalize crashed")

    staged = stage()
    sent = email_customers(staged)
    finalize(sent)
    compensate(staged, undo("stage"))
    irreversible(sent)
