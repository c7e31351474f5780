"""Campaign figures of a run: ROI, CPA, CTR and cost per generation, from what the run recorded.

A campaign's steps record facts, never ratios: what they spent goes to the cost ledger
(``record_cost``), what happened is recorded as business metrics named for the outcome
(``impressions``, ``clicks``, ``conversions``, ``revenue``, ``generations``; summed over the run's
steps). The ratios are computed here, once, the same way for every face and every campaign:

* CTR = clicks / impressions;
* CPA = spend / conversions;
* ROI = (revenue − spend) / spend;
* cost per generation = the spend of the steps that recorded ``generations`` / the generations.

A ratio whose denominator is zero or missing is ``None``, not 0 or infinity.
"""

from __future__ import annotations

from pydantic import Field

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.base import ResponseModel

__all__ = ["OUTCOMES", "CampaignFigures", "campaign_figures"]

#: The business metrics a campaign's steps record, summed over the run.
OUTCOMES = ("impressions", "clicks", "conversions", "revenue", "generations")


class CampaignFigures(ResponseModel):
    """One campaign run's totals and the ratios computed from them."""

    dag_id: str = Field(description="the campaign DAG")
    run_id: str = Field(description="the run")
    currency: str | None = Field(description="the run's currency (a run spends in one)")
    spend: float = Field(description="everything the run wrote to the cost ledger")
    generation_spend: float = Field(description="spend of the steps that recorded generations")
    impressions: float = Field(description="sum over the run's steps")
    clicks: float = Field(description="sum over the run's steps")
    conversions: float = Field(description="sum over the run's steps")
    revenue: float = Field(description="sum over the run's steps")
    generations: float = Field(description="sum over the run's steps")
    ctr: float | None = Field(description="clicks / impressions")
    cpa: float | None = Field(description="spend / conversions")
    roi: float | None = Field(description="(revenue - spend) / spend")
    cost_per_generation: float | None = Field(description="generation spend / generations")


def _ratio(top: float, bottom: float) -> float | None:
    return top / bottom if bottom else None


def campaign_figures(ctx: AppContext, dag_id: str, run_id: str) -> CampaignFigures:
    """The figures of one run, from its cost ledger entries and its business metrics.

    Raises:
        RunNotFoundError: no such run in the store.
    """
    store = ctx.store
    store.get_run(dag_id, run_id)  # an unknown run is an error, not a campaign of zeros
    totals = dict.fromkeys(OUTCOMES, 0.0)
    generating: set[str | None] = set()
    for metric in store.business_metrics(dag_ids=[dag_id], run_id=run_id):
        if metric.name in totals:
            totals[metric.name] += metric.value
            if metric.name == "generations":
                generating.add(metric.step_id)
    # The ledger read is bounded by the run's start: no other run's history is scanned.
    since = store.run_created_at(dag_id, run_id)
    entries = [
        entry
        for entry in store.ledger_as_metrics(dag_ids=[dag_id], since=since)
        if entry.run_id == run_id
    ]
    spend = sum(entry.value for entry in entries)
    generation_spend = sum(entry.value for entry in entries if entry.step_id in generating)
    currencies = sorted({entry.unit for entry in entries if entry.unit})
    return CampaignFigures(
        dag_id=dag_id,
        run_id=run_id,
        currency=currencies[0] if currencies else None,
        spend=round(spend, 6),
        generation_spend=round(generation_spend, 6),
        **totals,
        ctr=_ratio(totals["clicks"], totals["impressions"]),
        cpa=_ratio(spend, totals["conversions"]),
        roi=_ratio(totals["revenue"] - spend, spend),
        cost_per_generation=_ratio(generation_spend, totals["generations"]),
    )
