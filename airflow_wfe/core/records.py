"""What the store hands back: plain frozen records, independent of SQLAlchemy rows.

Field names are the public names of ``wfe runs show --json`` and ``GET /wfe/api/runs/...``, so the CLI
and the REST API serialise these records instead of inventing their own shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Move",
    "RunRecord",
    "RunSummary",
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
