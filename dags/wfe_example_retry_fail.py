"""A governed DAG that fails after a retry: the flaky step fails twice, so its downstream never runs.

The recorded history shows the retry (RUNNING → RETRYING → RUNNING → FAILED), the downstream step
reconciled as UPSTREAM_FAILED when the run ends, and the run going RUNNING → FAILED with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task


@dag(
    dag_id="wfe_example_retry_fail",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example"],
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": timedelta(seconds=1)},
    doc_md=__doc__,
)
def wfe_example_retry_fail() -> None:
    @task
    def prepare() -> str:
        return "batch-42"

    @task
    def flaky_publish(batch: str) -> None:
        raise ConnectionError(f"publishing {batch}: upstream API answered 503")

    @task
    def notify() -> None:
        print("published")

    flaky_publish(prepare()) >> notify()


wfe_example_retry_fail()
