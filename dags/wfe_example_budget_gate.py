"""A budget gate stops a run before its expensive step; what was done is undone.

``translate`` spends 8 USD (recorded in the cost ledger with ``record_cost``); the gate in front of
``summarize`` reserves 5 USD under a per-run budget of 10 USD: 8 + 5 > 10, so the gate denies. The run
goes ``RUNNING → REJECTED → COMPENSATING → COMPENSATED``: ``summarize`` never runs and ``translate``'s
output is deleted. ``wfe runs show`` lists the decision with its reasons and policy version.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from airflow_wfe import compensate
from airflow_wfe.adapters.gates import PolicyGateOperator

RUN_BUDGET = """
name: llm-run-budget
version: "2026.11"
rules:
  - {id: per-run, kind: budget, scope: run, limit: 10, currency: USD}
"""


def delete_translation(result: str, idempotency_key: str) -> str:
    print(f"deleting {result} (idempotency key {idempotency_key})")
    return "deleted"


@dag(
    dag_id="wfe_example_budget_gate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example"],
    default_args={"owner": "ml-platform", "retries": 0, "retry_delay": timedelta(seconds=1)},
    doc_md=__doc__,
)
def wfe_example_budget_gate() -> None:
    @task
    def translate() -> str:
        from airflow_wfe.adapters.task.cost import record_cost

        record_cost(8.0, detail="40,000 tokens x 0.0002 USD")
        return "s3://bucket/translations/run.json"

    @task
    def summarize(path: str) -> None:
        print(f"summarizing {path}")

    translated = translate()
    compensate(translated, delete_translation)
    gate = PolicyGateOperator(task_id="budget_gate", inline_policies=[RUN_BUDGET], reserve=5.0)
    translated >> gate >> summarize(translated)


wfe_example_budget_gate()
