"""Canary analysis gates (tests/integration/test_canary_gates.py).

Each DAG: ``deploy_canary`` (compensated by ``undeploy``) >> canary gate >> ``promote``. The samples
come from a seeded function (error rates of canary and baseline) or from Prometheus's HTTP API (a
connection ``wfe_t_prom`` the test points at a small local server). Airflow DAGs for tests only.
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_wfe import CanaryGateOperator, compensate

ERRORS = {"name": "error_rate", "direction": "lower_is_better", "limit": 0.2, "min_samples": 30}
PROMQL = {
    **ERRORS,
    "canary_query": 'rate(http_errors_total{release="canary"}[1m])',
    "baseline_query": 'rate(http_errors_total{release="stable"}[1m])',
}


def _ledger(line: str) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if path:
        with Path(path).open("a") as handle:
            handle.write(line + "\n")


def _rates(mean: float, spread: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [max(0.0, rng.gauss(mean, spread)) for _ in range(n)]


def undeploy(result: str, idempotency_key: str) -> None:
    _ledger(f"undeploy {result}")


def _canary_dag(
    dag_id: str, samples: Any = None, metric: dict[str, Any] = ERRORS, **gate: Any
) -> None:
    with DAG(dag_id=dag_id, start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe", "test"]):

        @task
        def deploy_canary() -> str:
            _ledger("deploy")
            return "release-2"

        @task
        def promote() -> None:
            _ledger("promote")

        deployed = deploy_canary()
        compensate(deployed, undeploy)
        check = CanaryGateOperator(
            task_id="canary_ok", metrics=[metric], samples=samples, poke_interval=1, **gate
        )
        deployed >> check >> promote()


def _worse(context: Any) -> dict[str, Any]:
    return {
        "error_rate": {"canary": _rates(0.09, 0.02, 200, 1), "baseline": _rates(0.02, 0.02, 200, 2)}
    }


def _healthy(context: Any) -> dict[str, Any]:
    return {
        "error_rate": {"canary": _rates(0.02, 0.01, 200, 3), "baseline": _rates(0.02, 0.01, 200, 4)}
    }


def _noisy(context: Any) -> dict[str, Any]:
    return {
        "error_rate": {
            "canary": _rates(0.05, 0.05, 3000, 5),
            "baseline": _rates(0.05, 0.05, 3000, 6),
        }
    }


def _growing(context: Any) -> dict[str, Any]:
    """Few samples on the first check, enough on the next ones (a counter file counts the checks)."""
    counter = Path(os.environ["WFE_TEST_LEDGER"] + ".checks")
    checks = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(checks))
    n = 10 if checks == 1 else 60
    return {
        "error_rate": {"canary": _rates(0.3, 0.01, n, 7), "baseline": _rates(0.02, 0.01, 60, 8)}
    }


_canary_dag("wfe_t_canary_rollback", _worse)
_canary_dag("wfe_t_canary_promote", _healthy)
_canary_dag("wfe_t_canary_noisy", _noisy)
_canary_dag("wfe_t_canary_hold", _growing)
_canary_dag(
    "wfe_t_canary_prometheus",
    metric=PROMQL,
    prometheus_conn_id="wfe_t_prom",
    window=timedelta(minutes=5),
)


with DAG(
    dag_id="wfe_t_canary_decorated", start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe"]
):
    from airflow_wfe import canary_gate

    @task
    def release() -> str:
        _ledger("deploy")
        return "release-3"

    @canary_gate(metrics=[ERRORS], poke_interval=1)
    def release_health(name: str) -> dict[str, Any]:
        _ledger(f"judging {name}")
        return _healthy({})

    @task
    def promote_decorated() -> None:
        _ledger("promote")

    release_health(release()) >> promote_decorated()
