"""Governed DAGs whose gates ask people (tests/integration/test_policy_approvals.py).

Each DAG: ``prepare`` >> gate >> ``deploy``. The policies are inline: always ask one person
(``wfe_t_approval_one``); ask two distinct people, never the run's triggerer
(``wfe_t_approval_two``); ask carol (assigned in Airflow), escalate to bob after 6 s, approve by default after 12 s; every gate
notifies through a notifier that writes down the assignees
(``wfe_t_approval_timeout``). Airflow DAGs for the test suite only.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseNotifier, task

from airflow_wfe.adapters.gates import PolicyGateOperator

ONE = """
name: one-approver
rules:
  - id: ask
    kind: approval
    exclude_triggerer: false
    reason: every release is approved by a person
"""

TWO = """
name: four-eyes
version: "2"
rules:
  - id: two-people
    kind: approval
    required: 2
    exclude_triggerer: true
    reason: production changes need two people, neither of them the one who asked
"""

TIMEOUT = """
name: on-call
rules:
  - id: ask-carol
    kind: approval
    approvers: [carol]
    escalate_after: 6s
    escalate_to: [bob]
    timeout: 12s
    on_timeout: approve
    reason: the on-call engineer approves
"""


class AssigneesToFile(BaseNotifier):
    """Appends who the request is assigned to, each time Airflow notifies (open, escalation)."""

    def notify(self, context: Any) -> None:
        users = context["task"].assigned_users or []
        path = Path(os.environ["AIRFLOW_HOME"]) / f"notified-{context['dag'].dag_id}.txt"
        with path.open("a") as file:
            file.write(",".join(u["id"] for u in users) + "\n")


def _dag(dag_id: str, policy: str) -> None:
    with DAG(dag_id=dag_id, start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe", "test"]):

        @task
        def prepare() -> None:
            return None

        @task
        def deploy() -> None:
            return None

        gate = PolicyGateOperator(
            task_id="approve",
            inline_policies=[policy],
            subject="Release?",
            notifiers=[AssigneesToFile()],
        )
        prepare() >> gate >> deploy()


_dag("wfe_t_approval_one", ONE)
_dag("wfe_t_approval_reject", ONE)
_dag("wfe_t_approval_two", TWO)
_dag("wfe_t_approval_timeout", TIMEOUT)
