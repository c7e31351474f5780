"""The audit trail as the faces return it: ``wfe audit show|verify|checkpoint|archive --json``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from airflow_wfe.app.models.base import ResponseModel

__all__ = [
    "AnchorResult",
    "ArchiveResult",
    "AuditEvent",
    "AuditStory",
    "AuditVerification",
    "CheckpointResult",
    "Finding",
    "VerifyReport",
]


class AuditEvent(ResponseModel):
    """One sealed event, its body parsed: the same fields for every body layout."""

    map_index: int | None = Field(description="the step's map index (-1 unmapped; null for runs)")
    payload: dict[str, Any] = Field(description="what happened (from/to state, reasons, amount...)")
    versions: dict[str, Any] = Field(description="versions in force (DAG, spec, policy:<name>)")
    v: int = Field(description="body layout (1 or 2)")
    seq: int = Field(description="position in the chain, from 1")
    prev: str = Field(description="hash of the previous event")
    at: str = Field(description="when, ISO 8601 UTC with milliseconds")
    type: str = Field(description="run.transition, step.transition, policy.decision, approval, ...")
    actor: str = Field(description="who caused it")
    dag_id: str | None = Field(description="DAG id, if the event concerns a run")
    run_id: str | None = Field(description="run id, if the event concerns a run")
    step_id: str | None = Field(description="task id, if the event concerns a step")
    hash: str = Field(description="SHA-256 of the stored body")


class AuditStory(ResponseModel):
    """Every audit event of one run, and whether each still matches its hash."""

    dag_id: str = Field(description="the run's DAG id")
    run_id: str = Field(description="the run id")
    events: list[AuditEvent] = Field(description="the run's events, in chain order")
    hashes_match: bool = Field(description="every event's body still hashes to its stored hash")


class Finding(ResponseModel):
    """One problem a verification found."""

    seq: int | None = Field(description="first event concerned; null for the chain head")
    kind: str = Field(description="deleted, edited, reordered, signature, head, replay, ...")
    message: str = Field(description="what is wrong, in words")

    def __str__(self) -> str:
        where = f"event #{self.seq}" if self.seq is not None else "chain head"
        return f"{where}: {self.kind}: {self.message}"


class VerifyReport(ResponseModel):
    """What verifying one source (the store, or an archive file) saw and found."""

    ok: bool = Field(description="no finding")
    events: int = Field(description="events checked")
    first_seq: int | None = Field(description="first sequence number checked")
    last_seq: int | None = Field(description="last sequence number checked")
    checkpoints: int = Field(description="signed checkpoints checked")
    signatures_checked: bool = Field(description="false when no key was available to check them")
    findings: list[Finding] = Field(description="every problem, first first")
    notes: list[str] = Field(description="what was not checked, and why")


class AuditVerification(ResponseModel):
    """The verdict over every source checked.

    Serialized flat: ``{"ok": ..., "<archive path>": {...}, ..., "store": {...}}``, archives first.
    """

    ok: bool = Field(description="every source verified")
    reports: dict[str, VerifyReport] = Field(
        description="per source (archive paths, then 'store'), serialized as top-level keys"
    )

    @model_serializer(mode="wrap")
    def _flat(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {"ok": data["ok"], **data["reports"]}

    def first_finding(self) -> Finding | None:
        """The first problem of the first broken source, for a one-line summary."""
        return next((f for r in self.reports.values() for f in r.findings), None)


class CheckpointResult(ResponseModel):
    """A signed checkpoint at the chain's head."""

    seq: int = Field(description="the event it vouches for")
    hash: str = Field(description="that event's hash")
    at: str = Field(description="when it was signed")
    algorithm: str = Field(description="hmac-sha256 or ed25519")
    key_id: str = Field(description="id of the signing key")
    signature: str = Field(description="the signature")


class ArchiveResult(ResponseModel):
    """What an archive run moved out of the store."""

    path: str = Field(description="the archive file written")
    first_seq: int = Field(description="first event archived")
    last_seq: int = Field(description="last event archived")
    events: int = Field(description="how many")
    sha256: str = Field(description="SHA-256 of the archive file")


class AnchorResult(ResponseModel):
    """A signed anchor written outside the store."""

    path: str = Field(description="the anchor file written")
    seq: int = Field(description="the chain position it vouches for (0: an empty trail)")
