"""A governed saga whose compensation process is SIGKILLed on its first try (real-executor test).

``charge`` succeeds, ``ship`` fails (no retries), so the saga compensates ``charge``. The refund
honours the idempotency contract a real compensation must: it applies its effect (a line
``applied <idempotency_key>`` in the ledger file named by ``WFE_TEST_LEDGER``) only if that key is not
in the ledger yet. On try 1 it then kills its own process with SIGKILL, after the effect was applied
but before the saga could record COMPENSATED; on try 2 it returns normally. Every call also writes an
``attempt`` line (key, try, pid, time) so the test can see both tries and when the kill happened.

Used by ``tests/integration/test_saga_killed_compensation.py`` only: it is not in the DAGs folder of
the other tests (a LocalExecutor would be needed for the kill to mean anything).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_wfe import compensate

DAG_ID = "wfe_t_saga_killed_compensation"


def _ledger() -> Path:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path:
        raise RuntimeError("WFE_TEST_LEDGER is not set: nowhere to apply the refund")
    return Path(path)


def refund_killed_once(result: Any, idempotency_key: str, ti: Any) -> str:
    ledger = _ledger()
    try_number = int(ti.try_number)
    with ledger.open("a") as handle:
        handle.write(
            f"attempt {idempotency_key} try={try_number} pid={os.getpid()} at={time.time():.3f}\n"
        )
    applied = f"applied {idempotency_key}"
    if applied not in ledger.read_text().splitlines():
        with ledger.open("a") as handle:
            handle.write(applied + "\n")
    if try_number == 1:
        # The effect is applied, the saga has not recorded it: the worst moment to die.
        os.kill(os.getpid(), signal.SIGKILL)
    return f"refunded {result['amount']}"


with DAG(
    DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe"],
    default_args={"retries": 0, "retry_delay": timedelta(seconds=1)},
):

    @task
    def charge() -> dict[str, Any]:
        return {"amount": 420, "currency": "EUR"}

    @task(retries=0)
    def ship(payment: dict[str, Any]) -> None:
        raise RuntimeError("carrier refused the parcel")

    payment = charge()
    ship(payment)
    compensate(payment, refund_killed_once, retries=1, retry_delay=timedelta(seconds=1))
