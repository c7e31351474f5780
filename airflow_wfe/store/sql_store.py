"""The SQL state store: every part of the :class:`~airflow_wfe.store.contract.Store` contract, on
any SQLAlchemy database (a SQLite file or PostgreSQL, both tested).

The class is composed of one part per concern, each in its own module over the shared write path of
:mod:`.base`: run and step writes (:mod:`.run_writes`, :mod:`.step_writes`) and reads (:mod:`.run_reads`), decisions and the run
moves they cause (:mod:`.decisions`), manual compensation requests (:mod:`.compensation_requests`),
the cost ledger (:mod:`.cost_ledger`), history and business metrics (:mod:`.history`), the audit
trail read back (:mod:`.audit_reader`), imports from Airflow's log (:mod:`.change_imports`), and
artifacts (:mod:`.artifacts`). Every write is one transaction holding the change and its audit
events; nothing outside this package sees a connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_wfe.store.audit_reader import AuditReads
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.change_imports import ChangeImports
from airflow_wfe.store.compensation_requests import CompensationRequests
from airflow_wfe.store.contract import RunPlan, StepPlan, Store
from airflow_wfe.store.cost_ledger import CostLedger
from airflow_wfe.store.decisions import Decisions
from airflow_wfe.store.history import History
from airflow_wfe.store.run_reads import RunReads
from airflow_wfe.store.run_writes import RUN_FACTS
from airflow_wfe.store.step_writes import StepWrites

if TYPE_CHECKING:
    from airflow_wfe.store.artifacts import ArtifactRegistry

__all__ = ["RUN_FACTS", "RunPlan", "SqlStore", "StepPlan", "Store"]


class SqlStore(
    StepWrites,
    Decisions,
    CompensationRequests,
    RunReads,
    CostLedger,
    History,
    AuditReads,
    ChangeImports,
):
    """A :class:`Store` on any SQLAlchemy database.

    Every state change is written together with its audit events, in the same transaction, and
    every text that may carry a secret (reasons, error messages) goes through the audit log's
    redactor first, so the state tables hold no more than the trail does.

    Args:
        url: SQLAlchemy URL. The schema is created on first use of an empty database; an outdated
            one raises :class:`~airflow_wfe.exceptions.SchemaOutdatedError`.
        audit: the audit log (signer, redactor, checkpoints); by default unsigned, names-only
            redaction, which is what unit tests and tools without Airflow get.
    """

    def __init__(self, url: str, *, audit: AuditLog | None = None) -> None:
        super().__init__(url, audit=audit)
        self._artifacts: ArtifactRegistry | None = None

    @property
    def artifacts(self) -> ArtifactRegistry:
        """Versioned artifacts, in this store's database and audit trail.

        Built on first use: task processes that never touch an artifact do not load its modules
        (measured ~3 ms of import per process)."""
        if self._artifacts is None:
            from airflow_wfe.store.artifacts import ArtifactRegistry

            self._artifacts = ArtifactRegistry(self)
        return self._artifacts
