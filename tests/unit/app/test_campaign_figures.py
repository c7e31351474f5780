"""Campaign figures are computed from what a run recorded, on a real SQLite store: the ledger's
spend and the outcomes summed over steps; cost per generation counts only the generating steps'
spend; a missing denominator gives no ratio, not zero; another run's records never leak in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_wfe.app.campaign import campaign_figures
from airflow_wfe.app.context import AppContext
from airflow_wfe.core.metrics.emitter import NullEmitter
from airflow_wfe.core.records import Move
from airflow_wfe.exceptions import RunNotFoundError
from airflow_wfe.store import SqlStore

DAG = "campaign"


def _run(store: SqlStore, run_id: str) -> None:
    moves = [Move("CREATED", None), Move("VALIDATED", None), Move("RUNNING", None)]
    store.advance_run(DAG, run_id, lambda _c: moves, actor="scheduler")


def _metric(store: SqlStore, run_id: str, step: str, name: str, value: float) -> None:
    store.add_business_metric(DAG, run_id, step_id=step, map_index=-1, name=name, value=value,
                              unit=None, at=datetime.now(UTC))  # fmt: skip


def test_figures_come_from_the_ledger_and_the_outcomes(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'wfe.db'}")
    ctx = AppContext.for_store(store, NullEmitter())
    for run_id in ("r1", "other"):
        _run(store, run_id)
    store.record_cost(DAG, "r1", "generate", 0.5, currency="EUR")
    store.record_cost(DAG, "r1", "generate", 0.7, currency="EUR")
    store.record_cost(DAG, "r1", "collect", 98.8, currency="EUR")
    _metric(store, "r1", "generate", "generations", 4)
    for step, clicks in (("collect", 30), ("optimize_1", 20)):
        _metric(store, "r1", step, "impressions", 1000)
        _metric(store, "r1", step, "clicks", clicks)
        _metric(store, "r1", step, "conversions", 5)
        _metric(store, "r1", step, "revenue", 150)
    store.record_cost(DAG, "other", "collect", 1000.0, currency="EUR")
    _metric(store, "other", "collect", "conversions", 999)

    figures = campaign_figures(ctx, DAG, "r1")
    assert (figures.spend, figures.currency) == (pytest.approx(100.0), "EUR")
    assert figures.conversions == 10
    assert figures.ctr == pytest.approx(50 / 2000)
    assert figures.cpa == pytest.approx(10.0)
    assert figures.roi == pytest.approx((300 - 100) / 100)
    assert figures.cost_per_generation == pytest.approx(1.2 / 4)

    empty = campaign_figures(ctx, DAG, "other")
    assert (empty.ctr, empty.cost_per_generation) == (None, None)
    assert empty.cpa == pytest.approx(1000 / 999)
    with pytest.raises(RunNotFoundError):
        campaign_figures(ctx, DAG, "never")
