"""What the store hands back: plain frozen records, independent of SQLAlchemy rows.

Field names are the public names of ``wfe runs show --json`` and ``GET /wfe/api/runs/...``, so the CLI
and the REST API serialise these records instead of inventing their own shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ArchiveResult",
    "BusinessMetric",
    "CompensationRequest",
    "CostEntry",
    "DecisionRecord",
    "Move",
    "RunHistory",
    "RunRecord",
    "RunSummary",
    "StepHistory",
    "StepRecord",
    "TransitionRecord",
    "to_jsonable",
]


@dataclass(frozen=True)
class Move:
    """One requested state change inside a plan: where to go and why."""

    to_state: str
    reason: str | None = None


@dataclass(frozen=True)
class TransitionRecord:
    """One stored transition of a run (``step_id`` is ``None``) or of a step."""

    from_state: str | None
    to_state: str
    at: datetime
    actor: str
    reason: str | None
    try_number: int | None = None
    step_id: str | None = None
    map_index: int | None = None
    #: When the run or step entered ``from_state`` (``None`` for its first transition); set on the
    #: records a write returns, so durations need no extra read.
    since: datetime | None = None


@dataclass(frozen=True)
class StepRecord:
    """A step (one Airflow task instance per map index) with its history."""

    step_id: str
    map_index: int
    state: str
    try_number: int
    created_at: datetime
    updated_at: datetime
    transitions: tuple[TransitionRecord, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """A run as listed: no histories."""

    dag_id: str
    run_id: str
    state: str
    run_type: str | None
    dag_version_id: str | None
    created_at: datetime
    updated_at: datetime
    spec_version: str | None = None
    spec_hash: str | None = None


@dataclass(frozen=True)
class RunRecord(RunSummary):
    """A run with its own transitions and its steps."""

    transitions: tuple[TransitionRecord, ...] = field(default=())
    steps: tuple[StepRecord, ...] = field(default=())


@dataclass(frozen=True)
class CompensationRequest:
    """A person asked for a run to be compensated (``wfe compensate``): a fact of its own, so the
    saga tells a manual request from a failure without reading the transition's free-text reason."""

    dag_id: str
    run_id: str
    actor: str
    at: datetime
    force: bool
    reason: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    """A gate's decision (``kind="policy"``) or a person's answer (``kind="approval"``)."""

    step_id: str
    kind: str
    outcome: str
    reasons: tuple[Mapping[str, Any], ...]
    policies: Mapping[str, str]
    actor: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CostEntry:
    """One line of the cost ledger."""

    dag_id: str
    run_id: str
    step_id: str
    amount: float
    currency: str
    detail: str | None
    at: datetime
    tags: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class RunHistory:
    """A run with its run-level transitions, as DORA and the report need it."""

    dag_id: str
    run_id: str
    state: str
    created_at: datetime
    dag_version_id: str | None
    spec_hash: str | None
    transitions: tuple[TransitionRecord, ...] = ()

    @property
    def change_key(self) -> str | None:
        """What identifies the change this run ships: the spec hash, else Airflow's DAG version."""
        return self.spec_hash or self.dag_version_id


@dataclass(frozen=True)
class StepHistory:
    """One step (task, map index) of one run with its transitions."""

    dag_id: str
    run_id: str
    step_id: str
    map_index: int
    state: str
    transitions: tuple[TransitionRecord, ...] = field(default=())


@dataclass(frozen=True)
class BusinessMetric:
    """One value a step recorded for its run (or a ledger entry read as a ``cost`` metric)."""

    dag_id: str
    run_id: str
    step_id: str | None
    map_index: int
    name: str
    value: float
    unit: str | None
    at: datetime


@dataclass(frozen=True)
class ArchiveResult:
    """What an audit archive run moved out of the database."""

    path: Path
    first_seq: int
    last_seq: int
    events: int
    sha256: str


def to_jsonable(record: Any) -> Any:
    """A record as JSON-ready data: datetimes in ISO 8601, step fields dropped from run transitions."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    data = convert(asdict(record))
    _drop_since(data)
    if isinstance(record, RunRecord):
        for transition in data["transitions"]:
            transition.pop("step_id", None)
            transition.pop("map_index", None)
        for step in data["steps"]:
            for transition in step["transitions"]:
                transition.pop("step_id", None)
                transition.pop("map_index", None)
    return data


def _drop_since(data: Any) -> None:
    # ``since`` is a convenience of freshly written records, not part of the stored history.
    if isinstance(data, dict):
        data.pop("since", None)
        for value in data.values():
            _drop_since(value)
    elif isinstance(data, list):
        for value in data:
            _drop_since(value)
