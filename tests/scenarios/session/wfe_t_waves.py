"""Blast-radius rollouts (tests/integration/test_waves.py): ten hosts in waves of 10%, 50% and 100%
(h0; h1..h4; h5..h9). ``deploy`` fails on the hosts the DAG names; ``undo`` puts a host back.
Airflow DAGs for the test suite only."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_wfe import rollout

HOSTS = [f"h{i}" for i in range(10)]


def _ledger(line: str) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if path:
        with Path(path).open("a") as handle:
            handle.write(line + "\n")


def undo(result: str, idempotency_key: str) -> None:
    _ledger(f"undo {result}")


def _rollout_dag(dag_id: str, broken: frozenset[str], max_failed: float) -> None:
    def deploy(target: str) -> str:
        if target in broken:
            raise RuntimeError(f"{target} refused the release")
        _ledger(f"deploy {target}")
        return target

    with DAG(dag_id=dag_id, start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe", "test"]):
        rollout(
            deploy, targets=HOSTS, waves=["10%", "50%", "100%"], undo=undo, max_failed=max_failed
        )


_rollout_dag("wfe_t_waves_ok", frozenset(), 0.0)
_rollout_dag("wfe_t_waves_stop", frozenset({"h3"}), 0.0)
_rollout_dag("wfe_t_waves_tolerated", frozenset({"h3"}), 0.3)
