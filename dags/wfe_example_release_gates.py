"""A release through the three automatic gates: data quality, canary analysis, blast-radius waves.

``test_results`` are checked with Great Expectations (every suite passed, durations sane) before
anything ships; the canary release is written to ``$AIRFLOW_HOME/wfe-demo-release/canary`` and judged
against the stable release on error rates (a seeded model of responses, so the example runs offline
and always promotes); then the release rolls out to five demo hosts (directories under
``$AIRFLOW_HOME/wfe-demo-release/hosts``, each with a ``current`` file) in waves of 20%, 60% and 100%.
Had any gate said no, the saga would have taken the canary and every updated host back.
``wfe runs show`` lists each gate's decision with its figures.
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from airflow_wfe import CanaryGateOperator, compensate, quality_gate, rollout

RELEASE = "2026.12.1"
HOSTS = [f"web-{i}" for i in range(1, 6)]


def _root() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", ".")) / "wfe-demo-release"


def _error_rates(mean: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [max(0.0, rng.gauss(mean, 0.004)) for _ in range(n)]


def canary_samples(context: Any) -> dict[str, Any]:
    """Error rates per minute of the canary and of the stable release (seeded, offline)."""
    return {
        "error_rate": {"canary": _error_rates(0.01, 60, 1), "baseline": _error_rates(0.01, 60, 2)}
    }


def remove_canary(result: str, idempotency_key: str) -> None:
    (_root() / "canary").unlink(missing_ok=True)


def deploy_host(target: str, release: str) -> str:
    host = _root() / "hosts" / target
    host.mkdir(parents=True, exist_ok=True)
    current = host / "current"
    if current.exists():
        (host / "previous").write_text(current.read_text())
    current.write_text(release)
    return target


def restore_host(result: str, idempotency_key: str) -> None:
    host = _root() / "hosts" / result
    previous = host / "previous"
    if previous.exists():
        (host / "current").write_text(previous.read_text())
    else:
        (host / "current").unlink(missing_ok=True)


@dag(
    dag_id="wfe_example_release_gates",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example", "deployment"],
    default_args={"owner": "platform", "retries": 0, "retry_delay": timedelta(seconds=1)},
    doc_md=__doc__,
)
def wfe_example_release_gates() -> None:
    @quality_gate(
        expectations=[
            {"expect_column_values_to_be_in_set": {"column": "status", "value_set": ["passed"]}},
            {
                "expect_column_values_to_be_between": {
                    "column": "seconds",
                    "min_value": 0,
                    "max_value": 600,
                }
            },
        ]
    )
    def test_results() -> Any:
        import pandas as pd

        suites = ["unit", "integration", "contract", "smoke"]
        return pd.DataFrame(
            {"suite": suites, "status": ["passed"] * 4, "seconds": [41, 230, 75, 12]}
        )

    @task
    def deploy_canary() -> str:
        _root().mkdir(parents=True, exist_ok=True)
        (_root() / "canary").write_text(RELEASE)
        return RELEASE

    canary = deploy_canary()
    compensate(canary, remove_canary)
    judged = CanaryGateOperator(
        task_id="canary_analysis",
        samples=canary_samples,
        metrics=[{"name": "error_rate", "limit": 0.05, "tolerance": 0.25, "min_samples": 30}],
        poke_interval=5,
        timeout=300,
    )
    waves = rollout(
        deploy_host,
        targets=HOSTS,
        waves=["20%", "60%", "100%"],
        undo=restore_host,
        op_kwargs={"release": RELEASE},
    )

    @task
    def announce() -> str:
        return f"{RELEASE} is live on {len(HOSTS)} hosts"

    test_results() >> canary >> judged >> waves >> announce()


wfe_example_release_gates()
