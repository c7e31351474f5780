"""DORA figures and the improvement report: ``wfe dora --json`` and ``wfe report --json``."""

from __future__ import annotations

from pydantic import Field, RootModel

from airflow_wfe.app.models.base import IsoDatetime, ResponseModel

__all__ = [
    "CostDay",
    "CostlyStep",
    "DoraFigures",
    "DoraList",
    "GateSummary",
    "Report",
    "RetriedStep",
    "SlowStep",
    "StepError",
]


class DoraFigures(ResponseModel):
    """The four DORA figures of one deployment DAG over one window (null: no data for it)."""

    dag_id: str = Field(description="the deployment DAG")
    window_start: IsoDatetime = Field(description="start of the window")
    window_end: IsoDatetime = Field(description="end of the window (now)")
    deployments: int = Field(description="runs that finished in the window")
    successes: int = Field(description="of which COMPLETED")
    failures: int = Field(description="of which failed")
    deployment_frequency_per_day: float = Field(description="deployments per day")
    lead_time_seconds: float | None = Field(description="mean time from a change's first run to "
                                            "its first successful deployment")  # fmt: skip
    mttr_seconds: float | None = Field(description="mean time from a failure to the next success")
    change_failure_rate: float | None = Field(description="failures / deployments")
    open_failure_since: IsoDatetime | None = Field(description="failing and not restored since")


class DoraList(RootModel[list[DoraFigures]]):
    """One entry per deployment DAG, by DAG id (a JSON array)."""

    root: list[DoraFigures]


class SlowStep(ResponseModel):
    """A step ranked by the p95 duration of its tries."""

    dag_id: str = Field(description="the DAG")
    step_id: str = Field(description="the step")
    tries: int = Field(description="tries measured")
    p50_seconds: float = Field(description="median try duration")
    p95_seconds: float = Field(description="95th percentile try duration")


class StepError(ResponseModel):
    """One error message (its first line) and how often a try ended with it."""

    error: str = Field(description="first line of the reason, at most 200 characters")
    count: int = Field(description="how often")


class RetriedStep(ResponseModel):
    """A step ranked by its retries."""

    dag_id: str = Field(description="the DAG")
    step_id: str = Field(description="the step")
    retries: int = Field(description="RUNNING -> RETRYING transitions in the window")
    errors: list[StepError] = Field(description="its three commonest errors")


class GateSummary(ResponseModel):
    """A policy ranked by how often its gates denied."""

    policy: str = Field(description="policy name")
    decisions: int = Field(description="gate decisions that evaluated it")
    deny: int = Field(description="of which deny")


class CostDay(ResponseModel):
    """Mean cost per run of the runs that started spending on one day."""

    day: str = Field(description="the day, YYYY-MM-DD (UTC)")
    runs: int = Field(description="runs that spent")
    mean_cost_per_run: float = Field(description="their mean total cost")


class CostlyStep(ResponseModel):
    """A step ranked by what it spent."""

    dag_id: str = Field(description="the DAG")
    step_id: str | None = Field(description="the step (null: recorded for the run as a whole)")
    cost: float = Field(description="total over the window")


class Report(ResponseModel):
    """What the window's history says to improve first (``wfe report``)."""

    window_start: IsoDatetime = Field(description="start of the window")
    window_end: IsoDatetime = Field(description="end of the window (now)")
    dag_ids: list[str] = Field(description="the DAGs asked for (empty: all)")
    runs: int = Field(description="runs created in the window")
    runs_by_state: dict[str, int] = Field(description="those runs by current state")
    failure_rate: float | None = Field(description="failed / finished runs")
    compensation_rate: float | None = Field(description="compensated / failed runs")
    slowest_steps: list[SlowStep] = Field(description="top 5 by p95 try duration")
    most_retried_steps: list[RetriedStep] = Field(description="top 5 by retries")
    gates: list[GateSummary] = Field(description="top 5 policies by denials")
    cost_per_run: list[CostDay] = Field(description="mean cost per run, by day")
    costliest_steps: list[CostlyStep] = Field(description="top 5 steps by cost")
    advice: list[str] = Field(description="what to improve first, in words")
