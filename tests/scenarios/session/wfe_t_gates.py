"""Governed DAGs with policy gates, run through Airflow by tests/integration/test_policy_gates.py.

``wfe_t_gate_budget``: ``book`` spends 8 (cost ledger), the gate reserves 5 for ``expensive`` under a
per-run budget of 10: denied, ``expensive`` never runs, the run is REJECTED and ``book`` compensated.
``wfe_t_gate_freeze``: a freeze period around now denies. ``wfe_t_gate_allow``: a low-risk change
under the same policies is allowed, with the facts a ``@policy_gate`` function adds.
``wfe_t_gate_overspend``: a step that spends past the run's budget (a policy file in ``[wfe]
policy_path``) fails without retrying; the run compensates.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_wfe import compensate
from airflow_wfe.adapters.gates import PolicyGateOperator, policy_gate

RUN_BUDGET = """
name: run-budget
version: "1"
rules:
  - id: per-run
    kind: budget
    scope: run
    limit: 10
"""

_now = datetime.now(UTC)
FREEZE = f"""
name: year-end-freeze
rules:
  - id: freeze
    kind: change_window
    timezone: Europe/Paris
    freeze:
      - start: {(_now - timedelta(days=1)).isoformat()}
        end: {(_now + timedelta(days=1)).isoformat()}
        reason: year-end change freeze
"""

RISK = """
name: risk
rules:
  - id: risky-needs-ok
    when: 'step.risk == "high" || metrics.error_rate > 0.05'
    decision: needs_approval
    reason: a risky change needs a person
"""


def _ledger(line: str) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if path:
        with Path(path).open("a") as handle:
            handle.write(line + "\n")


def unbook(result: str, idempotency_key: str) -> None:
    _ledger(f"unbook {result}")


with DAG(
    dag_id="wfe_t_gate_budget",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    tags=["wfe", "test"],
):

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
    dag_id="wfe_t_gate_freeze",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    tags=["wfe", "test"],
):

    @task
    def release() -> None:
        _ledger("released during freeze")

    PolicyGateOperator(task_id="change_window", inline_policies=[FREEZE]) >> release()


with DAG(
    dag_id="wfe_t_gate_allow",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    tags=["wfe", "test"],
):

    @task
    def measure() -> float:
        return 0.01

    @policy_gate(inline_policies=[RISK, RUN_BUDGET], step={"risk": "low"}, reserve=1.0)
    def canary_ok(error_rate: float) -> dict[str, object]:
        return {"metrics": {"error_rate": error_rate}}

    @task
    def promote() -> None:
        _ledger("promoted")

    canary_ok(measure()) >> promote()


with DAG(
    dag_id="wfe_t_gate_overspend",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    tags=["wfe", "test"],
):

    @task
    def cheap() -> str:
        from airflow_wfe.adapters.task.cost import record_cost

        record_cost(4.0, detail="small call")
        return "c1"

    @task(retries=2)
    def costly(_: str) -> None:
        from airflow_wfe.adapters.task.cost import record_cost

        record_cost(7.5, detail="big model call")  # 11.5 > 10: fails, no retry

    first = cheap()
    compensate(first, unbook)
    costly(first)  # its budget is tests/policies/run_budget.yaml ([wfe] policy_path in the test)


BROKEN = """
name: needs-latency
rules:
  - {id: slow, when: 'metrics.latency_ms > 500.0', decision: deny, reason: too slow}
"""

with DAG(
    dag_id="wfe_t_gate_fail_closed",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    tags=["wfe", "test"],
):

    @task
    def ship() -> None:
        _ledger("shipped without a decision")

    # No gate here measures latency: the policy cannot be evaluated, so the gate fails closed.
    PolicyGateOperator(task_id="latency_gate", inline_policies=[BROKEN]) >> ship()


RATIO = """
name: error-ratio
rules:
  - {id: ratio, when: 'int(run.params.errors) / int(run.params.calls) > 0', decision: deny,
     reason: errors}
"""

with DAG(
    dag_id="wfe_t_gate_division",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={"errors": 0, "calls": 0},
    tags=["wfe", "test"],
):

    @task
    def ship_ratio() -> None:
        _ledger("shipped despite a division by zero")

    # calls = 0: CEL raises ZeroDivisionError, which used to escape the gate without a decision.
    PolicyGateOperator(task_id="ratio_gate", inline_policies=[RATIO]) >> ship_ratio()
