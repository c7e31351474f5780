"""A governed saga: when a step fails, what already happened is undone, in reverse order.

Booking a trip reserves a seat, charges the card and books a hotel; the hotel is full, so the run
fails. airflow-wfe then runs the compensations as real Airflow tasks (see the grid): the charge is
refunded, then the seat released. The run ends COMPENSATED; ``wfe runs show`` lists each compensation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from airflow_wfe import compensate


def refund(result: dict[str, Any], idempotency_key: str) -> str:
    # A real refund passes idempotency_key to the payment API, so a retried refund is applied once.
    print(f"refunding {result['amount']} {result['currency']} (idempotency key {idempotency_key})")
    return "refunded"


def release_seat(result: str, idempotency_key: str) -> str:
    print(f"releasing seat {result} (idempotency key {idempotency_key})")
    return "released"


@dag(
    dag_id="wfe_example_saga",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example"],
    default_args={"owner": "travel", "retries": 0, "retry_delay": timedelta(seconds=1)},
    doc_md=__doc__,
)
def wfe_example_saga() -> None:
    @task
    def reserve_seat() -> str:
        return "12A"

    @task
    def charge_card(seat: str) -> dict[str, Any]:
        return {"seat": seat, "amount": 420, "currency": "EUR"}

    @task
    def book_hotel(payment: dict[str, Any]) -> None:
        raise RuntimeError("hotel is fully booked for those dates")

    seat = reserve_seat()
    payment = charge_card(seat)
    book_hotel(payment)
    compensate(seat, release_seat)
    compensate(payment, refund, retries=2)


wfe_example_saga()
