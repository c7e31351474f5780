"""Whether the current process is a task process forked by Airflow's supervisor.

Kept in a module of its own, importing nothing of airflow-wfe, because the cluster policy asks it
while a task process re-parses its DAG file, before deciding whether it needs the (heavier)
parse-time policy machinery at all: importing that machinery only to learn it is not needed cost
every governed task process ~4.5 ms of CPU (docs/performance.md).
"""

from __future__ import annotations

import os
import sys

__all__ = ["in_task_process"]


def in_task_process() -> bool:
    """Whether this is a forked task process (which re-parses its DAG file at every start).

    Airflow's supervisor blocks the ORM of every process it forks (task processes and the DAG
    processor's parsing children alike) by pointing the connection at a fake URL; a parsing child
    runs the DAG processor's own entry point, whose module a task process never loads.
    """
    blocked = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "").startswith(
        "airflow-db-not-allowed"
    )
    return blocked and "airflow.dag_processing.processor" not in sys.modules
