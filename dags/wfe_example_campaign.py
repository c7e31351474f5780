"""Business metrics from steps: a marketing campaign reports ROI, CPA, CTR and cost per generation.

Spending goes to the cost ledger with ``record_cost`` (the one cost channel: budgets, ``wfe cost`` and
``wfe report`` read it); every other figure the business cares about is recorded with
``record_business_metric``, stored with the run and sent to StatsD as
``wfe.business.<metric>.<dag_id>`` gauges (docs/metrics.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task


@dag(
    dag_id="wfe_example_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example"],
    default_args={"owner": "marketing", "retries": 1, "retry_delay": timedelta(seconds=1)},
    doc_md=__doc__,
)
def wfe_example_campaign() -> None:
    @task
    def generate_creatives() -> dict[str, Any]:
        from airflow_wfe import record_business_metric, record_cost

        generations, spend = 40, 3.2  # 40 images from a generative model, 3.20 EUR of API calls
        record_cost(spend, currency="EUR", detail=f"{generations} image generations")
        record_business_metric("cost_per_generation", spend / generations, unit="EUR")
        return {"creatives": generations, "spend": spend}

    @task
    def run_campaign(creatives: dict[str, Any]) -> dict[str, Any]:
        from airflow_wfe import record_cost

        media_spend = 250.0
        record_cost(media_spend, currency="EUR", detail="media spend")
        return {
            "impressions": 120_000,
            "clicks": 2_640,
            "conversions": 66,
            "revenue": 1_980.0,
            "spend": creatives["spend"] + media_spend,
        }

    @task
    def evaluate(stats: dict[str, Any]) -> None:
        from airflow_wfe import record_business_metric

        record_business_metric("ctr", stats["clicks"] / stats["impressions"], unit="ratio")
        record_business_metric("cpa", stats["spend"] / stats["conversions"], unit="EUR")
        record_business_metric(
            "roi", (stats["revenue"] - stats["spend"]) / stats["spend"], unit="ratio"
        )

    evaluate(run_campaign(generate_creatives()))


wfe_example_campaign()
