"""Spending, policy dry runs and compensation requests: ``wfe cost|policy test|compensate --json``."""

from __future__ import annotations

from pydantic import Field, RootModel

from airflow_wfe.app.models.base import ResponseModel

__all__ = [
    "ApprovalRequirement",
    "CompensationRequest",
    "CostList",
    "DagCost",
    "DagPolicyCheck",
    "DagPolicyChecks",
    "PolicyDecision",
    "PolicyReason",
]


class DagCost(ResponseModel):
    """What one DAG spent (the cost ledger) against its budgets."""

    dag_id: str = Field(description="the DAG")
    currency: str = Field(description="currency of the amounts")
    today: float = Field(description="spent since midnight UTC")
    month: float = Field(description="spent since the first of the month (UTC)")
    last_30_days: float = Field(description="spent over the last 30 days")
    runs_30_days: int = Field(description="runs that spent over the last 30 days")
    per_run_30_days: float = Field(description="last_30_days / runs_30_days (0 without runs)")
    budgets: dict[str, float] = Field(
        description="DAG-wide budget limits of the policies that apply, by scope (run, dag_day, "
        "dag_month); the lowest limit when several policies set one"
    )


class CostList(RootModel[list[DagCost]]):
    """Per DAG, by DAG id (a JSON array)."""

    root: list[DagCost]


class PolicyReason(ResponseModel):
    """One rule that matched."""

    policy: str = Field(description="policy name")
    version: str = Field(description="policy version (declared version + content hash)")
    rule: str = Field(description="rule id")
    outcome: str = Field(description="allow, deny or needs_approval")
    message: str = Field(description="why, in words")


class ApprovalRequirement(ResponseModel):
    """Who must approve, merged from every approval rule that asked."""

    approvers: list[str] = Field(description="Airflow user ids who may approve (empty: anyone)")
    required: int = Field(description="distinct approvers needed")
    exclude_triggerer: bool = Field(description="the run's triggerer cannot approve")
    timeout_s: float | None = Field(description="seconds to wait for an answer")
    on_timeout: str = Field(description="what a timeout means: reject or approve")
    escalate_after_s: float | None = Field(description="seconds before escalating")
    escalate_to: list[str] = Field(description="who is asked after escalation")


class PolicyDecision(ResponseModel):
    """What a gate would decide (``wfe policy test``) or decided."""

    decision: str = Field(description="allow, deny or needs_approval")
    reasons: list[PolicyReason] = Field(description="every rule that matched")
    policies: dict[str, str] = Field(description="policy name -> version evaluated")
    approval: ApprovalRequirement | None = Field(description="set when the decision needs approval")


class CompensationRequest(ResponseModel):
    """A recorded manual compensation request (``wfe compensate``)."""

    dag_id: str = Field(description="the run's DAG id")
    run_id: str = Field(description="the run id")
    state: str = Field(description="the run's state now: COMPENSATING")
    actor: str = Field(description="who asked")
    reason: str = Field(description="the recorded reason")
    cleared: list[str] = Field(description="saga task ids cleared for Airflow to run again")


class DagPolicyCheck(ResponseModel):
    """What the parse-time policies (and ``[wfe] parse_time_checks``) say of one DAG of a file."""

    dag_id: str | None = Field(description="the DAG (null: the file failed before defining one)")
    outcome: str = Field(description="allow or deny")
    problems: list[str] = Field(description="each refusal, naming the policy, rule and file")


class DagPolicyChecks(RootModel[list[DagPolicyCheck]]):
    """Per DAG of the file, by DAG id (a JSON array); ``wfe policy test --dag FILE``."""

    root: list[DagPolicyCheck]
