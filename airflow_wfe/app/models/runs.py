"""Runs as listed and as shown: ``wfe runs list|show --json`` and ``GET /wfe/api/v1/runs...``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from airflow_wfe.app.models.base import IsoDatetime, ResponseModel

__all__ = [
    "Compensation",
    "DecisionItem",
    "RunArtifact",
    "RunDetail",
    "RunList",
    "RunSummary",
    "StepDetail",
    "Transition",
]


class Transition(ResponseModel):
    """One stored state change of a run or of a step."""

    from_state: str | None = Field(description="state before; null for the first transition")
    to_state: str = Field(description="state after")
    at: IsoDatetime = Field(description="when it was recorded (UTC)")
    actor: str = Field(description="who caused it: scheduler, worker, user:<id>, cli:<user>, ...")
    reason: str | None = Field(description="why, in words (an error message, a decision)")
    try_number: int | None = Field(
        description="the Airflow try it belongs to (steps; null for runs)"
    )


class RunSummary(ResponseModel):
    """A run as listed: where it stands, without its history."""

    dag_id: str = Field(description="Airflow DAG id")
    run_id: str = Field(description="Airflow run id")
    state: str = Field(description="run state: CREATED, VALIDATED, RUNNING, COMPLETED, FAILED, ...")
    run_type: str | None = Field(description="Airflow run type (manual, scheduled, ...)")
    dag_version_id: str | None = Field(description="Airflow's DAG version the run used")
    created_at: IsoDatetime = Field(description="first record of the run")
    updated_at: IsoDatetime = Field(description="last state change")
    spec_version: str | None = Field(description="the workflow spec's declared version, if any")
    spec_hash: str | None = Field(description="content hash of the workflow spec, if any")


class RunList(RootModel[list[RunSummary]]):
    """Runs, newest first (a JSON array)."""

    root: list[RunSummary]


class StepDetail(ResponseModel):
    """One step instance (an Airflow task, one per map index) with its own history."""

    step_id: str = Field(description="Airflow task id")
    map_index: int = Field(description="map index; -1 for an unmapped task")
    state: str = Field(description="step state: PENDING, RUNNING, SUCCEEDED, FAILED, ...")
    try_number: int = Field(description="the latest try (0: never ran)")
    created_at: IsoDatetime = Field(description="first record of the step")
    updated_at: IsoDatetime = Field(description="last state change")
    transitions: list[Transition] = Field(description="every state change, oldest first")


class Compensation(ResponseModel):
    """A compensated step instance: when its compensation started, how it ended."""

    step_id: str = Field(description="the step that was undone")
    map_index: int = Field(description="its map index (-1: unmapped)")
    outcome: str = Field(description="COMPENSATED, COMPENSATION_FAILED, or COMPENSATING (running)")
    started_at: IsoDatetime = Field(description="when the step went COMPENSATING")
    ended_at: IsoDatetime | None = Field(description="when it ended; null while it runs")
    reason: str | None = Field(description="the reason of the ending (or of the start)")
    order: int = Field(description="1-based position in the order compensations started")


class DecisionItem(ResponseModel):
    """A gate's decision (``kind`` policy) or a person's answer (``kind`` approval)."""

    step_id: str = Field(description="the gate's task id")
    kind: str = Field(
        description="policy (a gate), preflight (the run's start checks), approval, canary, ..."
    )
    outcome: str = Field(description="allow, deny, needs_approval; approved, rejected, ...")
    at: IsoDatetime = Field(description="when it was recorded")
    actor: str = Field(description="gate:<task> for a policy decision, user:<id> for an answer")
    policies: dict[str, str] = Field(description="policy name -> version evaluated")
    reasons: list[dict[str, Any]] = Field(
        description="each reason: policy, version, rule, outcome, message (those that apply)"
    )
    comment: Any = Field(description="the approver's comment, or null")


class RunArtifact(ResponseModel):
    """An artifact version the run used (pinned when the run started)."""

    name: str = Field(description="artifact name")
    version: str = Field(description="the version the run read")
    used_at: IsoDatetime = Field(description="its first use in the run")


class RunDetail(RunSummary):
    """One run: its summary, its transitions, its steps, its compensations and decisions."""

    transitions: list[Transition] = Field(description="the run's own state changes, oldest first")
    steps: list[StepDetail] = Field(description="every step instance with its history")
    compensations: list[Compensation] = Field(description="compensated steps, in the order run")
    decisions: list[DecisionItem] = Field(description="gate decisions and approvals, in order")
    artifacts: list[RunArtifact] = Field(
        default_factory=list,
        description="artifact versions the run used (those active at its start), first use first",
    )
    spooled: int = Field(
        default=0,
        description="transitions of this run still waiting in this host's local spool for the "
        "store (docs/reliability.md); 0 when everything reached it",
    )
