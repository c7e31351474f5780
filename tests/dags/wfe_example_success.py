"""A governed DAG that succeeds: one tag opts it in, and every state change is recorded.

Try it: ``make demo`` (or ``airflow dags test wfe_example_success``), then
``wfe runs show wfe_example_success <run_id>``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task


@dag(
    dag_id="wfe_example_success",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example"],  # the "wfe" tag is the one line that governs this DAG
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": timedelta(seconds=1)},
    doc_md=__doc__,
)
def wfe_example_success() -> None:
    @task
    def extract() -> list[int]:
        return [3, 1, 2]

    @task
    def score(value: int) -> int:
        return value * 10

    @task
    def load(scores: list[int]) -> int:
        total = sum(scores)
        print(f"loaded {len(scores)} scores, total {total}")
        return total

    load(score.expand(value=extract()))


wfe_example_success()
