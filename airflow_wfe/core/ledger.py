"""What the store gives back beyond runs and steps: decisions, the cost ledger, run and step
histories for reports and DORA, business metrics, manual compensation requests, audit archives.

Apart from :mod:`airflow_wfe.core.records` (runs, steps, transitions) because a task process loads
that module at its first hook and never these: each frozen dataclass costs about 1 ms to create at
import (measured), and a governed task pays every millisecond again in its own process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_wfe.core.records import TransitionRecord

__all__ = [
    "ArchiveResult",
    "BusinessMetric",
    "CompensationRequest",
    "CostEntry",
    "DecisionRecord",
    "RunHistory",
    "StepHistory",
]


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
