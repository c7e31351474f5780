"""The store contract: everything airflow-wfe persists, behind one typed protocol.

The recorder, the application layer and the adapters depend on :class:`Store`, never on the SQL
implementation, so a second implementation (an in-memory one for tests) needs no ``isinstance``
checks anywhere. Every method either reads or writes in one transaction of its own; SQL never leaves
the store package.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow_wfe.core.artifact_records import (
        ArtifactHistory,
        ArtifactSummary,
        ArtifactUse,
        ArtifactVersion,
    )
    from airflow_wfe.core.audit.events import AuditEvent, SealedEvent
    from airflow_wfe.core.audit.signing import Keyring, Signer
    from airflow_wfe.core.audit.verify import Checkpoint, VerifyReport
    from airflow_wfe.core.ledger import (
        ArchiveResult,
        BusinessMetric,
        CompensationRequest,
        CostEntry,
        DecisionRecord,
        RunHistory,
        StepHistory,
    )
    from airflow_wfe.core.records import Move, RunRecord, RunSummary, TransitionRecord
    from airflow_wfe.core.states import RunState, StepState
    from airflow_wfe.exceptions import IllegalTransitionError
    from airflow_wfe.store.audit_writer import AuditLog

__all__ = ["ArtifactStore", "RunAndStep", "RunPlan", "StepPlan", "Store"]

#: ``plan(current_state) -> moves`` for a run; ``None`` means the run does not exist yet.
RunPlan = Callable[["RunState | None"], "Sequence[Move]"]
#: ``plan(current_state, current_try_number) -> moves`` for a step.
StepPlan = Callable[["StepState | None", int], "Sequence[Move]"]


@dataclass(frozen=True)
class RunAndStep:
    """What :meth:`Store.advance_run_and_step` wrote, in its one transaction.

    Attributes:
        run: the run's transitions written.
        state: the run's state after them (``None``: the run is not recorded).
        step: the step's transitions written; ``None`` when the step was not tried (the run's
            state did not satisfy the caller's condition).
        refused: the state machine refused the step's plan: the refusal is audited and committed
            with the run's part; the caller reports the run's part, then raises it.
    """

    run: list[TransitionRecord]
    state: RunState | None
    step: list[TransitionRecord] | None = None
    refused: IllegalTransitionError | None = None


class ArtifactStore(Protocol):
    """Versioned artifacts: content-addressed versions, one active per name, uses per run."""

    def register(
        self, name: str, content: bytes, *, media_type: str = "text/plain", actor: str
    ) -> ArtifactVersion: ...

    def activate(
        self, name: str, version: str, *, actor: str, reason: str | None = None
    ) -> ArtifactVersion: ...

    def rollback(self, name: str, *, actor: str, reason: str | None = None) -> ArtifactVersion: ...

    def record_use(self, dag_id: str, run_id: str, name: str, version: str) -> None: ...

    def get(self, name: str, version: str) -> ArtifactVersion: ...

    def active(self, name: str) -> ArtifactVersion: ...

    def list(self) -> builtins.list[ArtifactSummary]: ...

    def history(self, name: str) -> ArtifactHistory: ...

    def runs_using(self, name: str, version: str | None = None) -> builtins.list[ArtifactUse]: ...

    def use_pinned(self, dag_id: str, run_id: str, name: str) -> ArtifactVersion: ...

    def used_by_run(self, dag_id: str, run_id: str) -> builtins.list[ArtifactUse]: ...


class Store(Protocol):
    """What the engine, the application layer and the adapters need from a store."""

    #: Where every change's audit events are sealed, and how secrets are redacted on the way in.
    audit: AuditLog

    # -- runs, steps and transitions (the recorder's one write path) ------------------------

    def advance_run(
        self,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        *,
        actor: str,
        at: datetime | None = None,
        facts: Mapping[str, str | None] | None = None,
    ) -> list[TransitionRecord]: ...

    def advance_step(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        map_index: int,
        plan: StepPlan,
        *,
        actor: str,
        try_number: int | None = None,
        at: datetime | None = None,
    ) -> list[TransitionRecord]: ...

    def advance_run_and_step(
        self,
        dag_id: str,
        run_id: str,
        run_plan: RunPlan,
        step_id: str,
        map_index: int,
        step_plan: StepPlan,
        *,
        step_if: Callable[[RunState | None], bool],
        actor: str,
        try_number: int | None = None,
        at: datetime | None = None,
        facts: Mapping[str, str | None] | None = None,
    ) -> RunAndStep:
        """``advance_run`` and, when ``step_if`` holds for the run's state after it,
        ``advance_step``, in one transaction (a task's start: the run-start check and the step's
        first write together). A refused run plan raises, as ``advance_run`` does."""
        ...

    def get_run(self, dag_id: str, run_id: str) -> RunRecord: ...

    def list_runs(
        self,
        *,
        dag_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]: ...

    def page_runs(
        self,
        *,
        dag_ids: Collection[str] | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[builtins.list[RunSummary], str | None]:
        """A page of runs newest first and the opaque cursor of the next (``None``: last page);
        ``dag_ids`` ``None`` is every DAG, empty is none."""
        ...

    def count_runs(
        self,
        *,
        dag_id: str | None = None,
        state: str | None = None,
        dag_ids: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int: ...

    def step_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], StepState]: ...

    def run_created_at(self, dag_id: str, run_id: str) -> datetime | None: ...

    def governed_dag_ids(self, dag_ids: Iterable[str]) -> set[str]:
        """Which of ``dag_ids`` have at least one recorded run."""
        ...

    def run_states(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """``{(dag_id, run_id): state}`` of the recorded runs among ``keys``."""
        ...

    # -- manual compensation requests ----------------------------------------------------------

    def request_compensation(
        self,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        *,
        actor: str,
        force: bool = False,
        reason: str | None = None,
        at: datetime | None = None,
    ) -> tuple[CompensationRequest, list[TransitionRecord]]:
        """Record a person's request to compensate the run and its move to COMPENSATING (the
        plan, checked and audited) in one transaction: both or neither."""
        ...

    def open_compensation_request(self, dag_id: str, run_id: str) -> CompensationRequest | None:
        """The manual request the run is COMPENSATING for (``None`` when it is not why)."""
        ...

    # -- decisions and the cost ledger ---------------------------------------------------------

    def record_decision(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        *,
        kind: str,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        details: Mapping[str, Any] | None = None,
    ) -> DecisionRecord: ...

    def record_decision_and_advance(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        *,
        kind: str,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        run_plan: RunPlan,
        details: Mapping[str, Any] | None = None,
    ) -> tuple[DecisionRecord, list[TransitionRecord]]:
        """A decision and the run move it causes, in one transaction: both or neither (an illegal
        move is audited as refused and raised, and the decision is not written)."""
        ...

    def record_preflight(
        self,
        dag_id: str,
        run_id: str,
        *,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        run_plan: RunPlan,
        details: Mapping[str, Any] | None = None,
        facts: Mapping[str, str | None] | None = None,
        step_id: str = "pre-flight",
        with_decision: bool = True,
    ) -> list[TransitionRecord]:
        """A run's pre-flight moves and (``with_decision``) its decision in one transaction,
        creating the run if new; nothing is written when the plan makes no move."""
        ...

    def record_parse_decision(
        self,
        dag_id: str,
        fingerprint: str,
        *,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str = "dag-processor",
    ) -> bool:
        """A DAG version's parse-time decision as an audit event, once per fingerprint."""
        ...

    def decisions(self, dag_id: str, run_id: str) -> list[DecisionRecord]: ...

    def gate_decisions(
        self, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[tuple[str, str]]: ...

    def record_cost(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        amount: float,
        *,
        currency: str = "USD",
        detail: str | None = None,
        tags: Sequence[str] = (),
        actor: str = "worker",
    ) -> CostEntry: ...

    def spent(
        self,
        dag_id: str,
        run_id: str | None,
        *,
        tags: Sequence[str] = (),
        now: datetime | None = None,
    ) -> dict[str, Any]: ...

    def cost_by_dag(
        self, *, dag_id: str | None = None, now: datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def ledger_as_metrics(
        self, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[BusinessMetric]: ...

    # -- history for DORA, reports and business metrics ------------------------------------

    def known_dag_ids(self) -> list[str]: ...

    def run_histories(self, dag_ids: Sequence[str] | None, since: datetime) -> list[RunHistory]: ...

    def step_histories(
        self, dag_ids: Sequence[str] | None, since: datetime
    ) -> list[StepHistory]: ...

    def version_first_seen(
        self, dag_id: str, change_keys: Iterable[str]
    ) -> dict[str, datetime]: ...

    def add_business_metric(
        self,
        dag_id: str,
        run_id: str,
        *,
        step_id: str | None,
        map_index: int,
        name: str,
        value: float,
        unit: str | None,
        at: datetime,
    ) -> None: ...

    def business_metrics(
        self,
        *,
        dag_ids: Sequence[str] | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
    ) -> list[BusinessMetric]: ...

    # -- the audit trail ----------------------------------------------------------------------

    def record_events(self, key: str, events: Sequence[AuditEvent]) -> list[SealedEvent]: ...

    def sync_position(self, source: str) -> int:
        """How far the import from ``source`` (e.g. Airflow's audit log) has got (0: not begun)."""
        ...

    def import_events(
        self, source: str, *, start: int, position: int, events: Sequence[AuditEvent]
    ) -> int:
        """Append imported events and move ``source``'s cursor from ``start`` to ``position`` in
        one transaction; 0 (nothing written) when another process moved the cursor first."""
        ...

    def audit_events(
        self,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[SealedEvent]: ...

    def verify_audit(
        self,
        keys: Keyring | Signer | None,
        *,
        since: datetime | None = None,
        signatures: bool = True,
    ) -> VerifyReport:
        """Check the trail read-only (creating nothing); no key is "not verified" unless
        ``signatures=False`` (hashes and links only)."""
        ...

    def verify_audit_archive(
        self, path: Path, keys: Keyring | Signer | None, *, signatures: bool = True
    ) -> VerifyReport: ...

    def audit_checkpoint(self, signer: Signer, reason: str = "manual") -> Checkpoint | None: ...

    def audit_anchor(self, signer: Signer, folder: Path) -> tuple[Path, int]:
        """Write a signed anchor of the chain's head to ``folder``, outside the store."""
        ...

    def verify_audit_anchors(
        self, folder: Path, keys: Keyring | Signer | None, *, signatures: bool = True
    ) -> VerifyReport:
        """Compare the store with the anchors in ``folder`` (truncation, rollback, erasure)."""
        ...

    def archive_audit(
        self,
        signer: Signer,
        *,
        older_than: datetime,
        folder: Path,
        actor: str,
        batch_limit: int = 1_000_000,
        keys: Keyring | None = None,
    ) -> ArchiveResult | None: ...

    # -- artifacts ----------------------------------------------------------------------------

    @property
    def artifacts(self) -> ArtifactStore: ...
