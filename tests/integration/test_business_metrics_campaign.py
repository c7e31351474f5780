"""The campaign example records its spending in the cost ledger and its business metrics with its
run, through Airflow."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store

pytestmark = pytest.mark.integration


def test_campaign_metrics_are_stored_with_the_run(dagbag: Any, fresh_runtime: None) -> None:
    dag_run = dagbag.get_dag("wfe_example_campaign").test()
    assert dag_run.state == "success"
    metrics = get_runtime_store().business_metrics(dag_ids=[dag_run.dag_id], run_id=dag_run.run_id)
    got = {(m.step_id, m.name): (m.value, m.unit) for m in metrics}
    spend = 3.2 + 250.0
    ledger = get_runtime_store().spent(dag_run.dag_id, dag_run.run_id)
    assert ledger["run"] == pytest.approx(spend)
    assert ledger["currencies"]["run"] == ["EUR"]
    assert got == {
        ("generate_creatives", "cost_per_generation"): (pytest.approx(3.2 / 40), "EUR"),
        ("evaluate", "ctr"): (pytest.approx(2640 / 120000), "ratio"),
        ("evaluate", "cpa"): (pytest.approx(spend / 66), "EUR"),
        ("evaluate", "roi"): (pytest.approx((1980 - spend) / spend), "ratio"),
    }
