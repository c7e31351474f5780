"""The AI campaign (``dags/wfe_example_campaign.py``) through a real scheduler.

* v1 of the prompt is registered and active; a run starts and is pinned to it; v2 is registered and
  activated; the next run uses v2. The registry records which run used which version.
* Each run's figures (``airflow_wfe.app.campaign``) are the ratios of what the run recorded in the
  cost ledger and as business metrics; v2's creatives convert better than v1's.
* A run whose next optimization round would pass the 400 EUR cap is denied at that round's policy
  check and compensated: every channel shows again what it showed before the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cluster import Cluster
from example_cluster import DAGS, example_folder, outcomes, trigger

from airflow_wfe.app.campaign import campaign_figures
from airflow_wfe.app.context import AppContext
from airflow_wfe.core.metrics.emitter import NullEmitter
from airflow_wfe.store import SqlStore

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

DAG_ID = "wfe_example_campaign"
FILES = ["wfe_example_campaign.py", "campaign_model.py", "policies/campaign.yaml"]
CHANNELS = ("search", "social", "email")


def _register(cluster: Cluster, prompt: str) -> str:
    proc = cluster.wfe("artifacts", "register", "campaign/prompt", str(DAGS / "prompts" / prompt),
                       "--activate")  # fmt: skip
    if proc.returncode != 0:
        cluster.fail(f"registering {prompt} failed: {proc.stderr}")
    shown = json.loads(cluster.wfe("artifacts", "show", "campaign/prompt", "--json").stdout)
    return str(shown["active_version"])


def _live(root: Path) -> dict[str, str | None]:
    def one(channel: str) -> str | None:
        link = root / "channels" / channel / "live"
        return Path(os.readlink(link)).stem if link.is_symlink() else None

    return {channel: one(channel) for channel in CHANNELS}


def test_campaign_pins_prompts_computes_figures_and_stops_at_the_cap(tmp_path: Path) -> None:
    dags = example_folder(tmp_path, FILES)
    env = {"AIRFLOW__WFE__POLICY_PATH": str(tmp_path / "dags" / "policies")}
    with Cluster.running(tmp_path, dags=dags, deadline_s=420.0, extra_env=env) as cluster:
        root = cluster.home / "wfe-demo-campaign"
        cluster.login()
        v1 = _register(cluster, "campaign-v1.txt")
        first = trigger(cluster, DAG_ID, {})
        cluster.wait_run_finished(DAG_ID, first)
        v2 = _register(cluster, "campaign-v2.txt")
        second = trigger(cluster, DAG_ID, {})
        cluster.wait_run_finished(DAG_ID, second)
        after_second = _live(root)
        capped = trigger(cluster, DAG_ID, {"media_spend": 80.0})
        cluster.wait_run_finished(DAG_ID, capped)
        records = {run: cluster.show_run(DAG_ID, run) for run in (first, second, capped)}

        store = SqlStore(f"sqlite:///{cluster.home / 'wfe.db'}")
        ctx = AppContext.for_store(store, NullEmitter())
        figures = {run: campaign_figures(ctx, DAG_ID, run) for run in records}
        uses = {(u.run_id, u.version) for u in store.artifacts.runs_using("campaign/prompt")}

        def as_told() -> None:
            assert [records[r]["state"] for r in (first, second, capped)] == [
                "COMPLETED", "COMPLETED", "COMPENSATED",
            ]  # fmt: skip
            assert v1 != v2
            assert {(first, v1), (second, v2)} <= uses, uses
            assert not {(first, v2), (second, v1)} & uses, uses
            for run in (first, second):
                f = figures[run]
                spent = store.spent(DAG_ID, run)["run"]
                assert (f.spend, f.currency) == (pytest.approx(spent), "EUR")
                assert f.cpa == pytest.approx(spent / f.conversions)
                assert f.roi == pytest.approx((f.revenue - spent) / spent)
                assert f.ctr == pytest.approx(f.clicks / f.impressions)
                assert 0.03 < (f.cost_per_generation or 0) < 0.06
            assert figures[second].conversions > figures[first].conversions
            assert outcomes(records[capped])["optimize_1_check"] == ["deny"]
            assert [c["step_id"] for c in records[capped]["compensations"]] == ["deploy_channels"]
            assert None not in after_second.values()
            assert _live(root) == after_second

        cluster.verify(as_told, json.dumps([f.model_dump() for f in figures.values()])[:3000])
