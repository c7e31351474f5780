"""The campaign example records spend in the cost ledger and outcomes as business metrics, and the
product computes ROI, CPA, CTR and cost per generation from them (``app/campaign.py``), through
Airflow's ``dag.test()``: the run is pinned to the prompt version active when it started, its
channels show the creative set the loop kept, and a budget stop takes every channel back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.app import artifacts
from airflow_wfe.app.campaign import campaign_figures
from airflow_wfe.app.context import AppContext
from airflow_wfe.engine.harness import get_runtime_store

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "wfe_example_campaign"


def _register_prompt(ctx: AppContext, name: str) -> str:
    content = (DAGS / "prompts" / name).read_bytes()
    registered = artifacts.register(
        ctx, "campaign/prompt", content, media_type="text/plain", actor="test", activate_it=True
    )
    return registered.registered.version


def _live(channel: str) -> str | None:
    link = Path(os.environ["AIRFLOW_HOME"]) / "wfe-demo-campaign" / "channels" / channel / "live"
    return Path(os.readlink(link)).stem if link.is_symlink() else None


def test_campaign_figures_come_from_recorded_spend_and_outcomes(
    dagbag: Any, fresh_runtime: None
) -> None:
    ctx = AppContext.from_process()
    v1 = _register_prompt(ctx, "campaign-v1.txt")
    dag_run = dagbag.get_dag(DAG_ID).test()
    assert dag_run.state == "success"
    store = get_runtime_store()
    metrics = store.business_metrics(dag_ids=[DAG_ID], run_id=dag_run.run_id)
    recorded: dict[str, float] = {}
    for m in metrics:
        recorded[m.name] = recorded.get(m.name, 0.0) + m.value
    ledger = store.spent(DAG_ID, dag_run.run_id)
    figures = campaign_figures(ctx, DAG_ID, dag_run.run_id)

    assert figures.currency == "EUR"
    assert figures.spend == pytest.approx(ledger["run"])
    # 3 channels x 40 EUR per round, the first round and at least one optimization round
    assert figures.spend > 240
    assert figures.ctr == pytest.approx(recorded["clicks"] / recorded["impressions"])
    assert figures.cpa == pytest.approx(ledger["run"] / recorded["conversions"])
    assert figures.roi == pytest.approx((recorded["revenue"] - ledger["run"]) / ledger["run"])
    assert figures.generations == recorded["generations"] >= 3
    assert 0.03 < (figures.cost_per_generation or 0) < 0.06  # the cost model: 0.02 + tokens
    uses = ctx.store.artifacts.runs_using("campaign/prompt", v1)
    assert any(use.run_id == dag_run.run_id for use in uses), uses
    lives = {_live(channel) for channel in ("search", "social", "email")}
    assert None not in lives, lives
    assert len(lives) == 1, lives


def test_a_round_past_the_spend_cap_stops_the_run_and_takes_the_channels_back(
    dagbag: Any, fresh_runtime: None
) -> None:
    ctx = AppContext.from_process()
    _register_prompt(ctx, "campaign-v1.txt")
    before = {channel: _live(channel) for channel in ("search", "social", "email")}
    dag_run = dagbag.get_dag(DAG_ID).test(run_conf={"media_spend": 80.0})
    assert dag_run.state == "failed"
    record = get_runtime_store().get_run(DAG_ID, dag_run.run_id)
    assert record.state == "COMPENSATED"
    denied = [
        d
        for d in get_runtime_store().decisions(DAG_ID, dag_run.run_id)
        if d.step_id == "optimize_1_check"
    ]
    assert [d.outcome for d in denied] == ["deny"]
    assert "spend cap" in str(denied[0].reasons)
    assert {channel: _live(channel) for channel in ("search", "social", "email")} == before
