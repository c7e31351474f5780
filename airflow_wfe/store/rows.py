"""Rows to records: the one place that turns what the database hands back into core records.

Every reader of the store maps through here, so a column read the same way everywhere (times in UTC,
JSON columns decoded) cannot drift between the run view, the history, the ledger and the trail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_wfe.core.audit.events import SealedEvent
from airflow_wfe.core.audit.verify import Checkpoint, Head
from airflow_wfe.core.records import RunSummary, TransitionRecord

if TYPE_CHECKING:
    from airflow_wfe.core.artifact_records import ArtifactVersion
    from airflow_wfe.core.ledger import BusinessMetric, CompensationRequest, DecisionRecord

__all__ = [
    "artifact_version",
    "business_metric",
    "checkpoint",
    "compensation_request",
    "decision",
    "head",
    "run_summary_fields",
    "sealed_event",
    "transition",
    "utc",
]


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time: SQLite hands back naive datetimes, and everything stored is
    UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def transition(
    row: Any, *, step_id: str | None = None, map_index: int | None = None
) -> TransitionRecord:
    """A transition row (or a joined row with its columns); ``step_id`` and ``map_index`` come
    from the step row when the query did not select them."""
    mapping = row._mapping
    return TransitionRecord(
        from_state=row.from_state,
        to_state=row.to_state,
        at=utc(row.at),
        actor=row.actor,
        reason=row.reason,
        try_number=mapping.get("try_number"),
        step_id=mapping.get("step_id", step_id),
        map_index=mapping.get("map_index", map_index),
    )


def run_summary_fields(row: Any) -> dict[str, Any]:
    """The :class:`~airflow_wfe.core.records.RunSummary` fields of a run row (also the start of a
    :class:`~airflow_wfe.core.records.RunRecord`)."""
    return {
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "state": row.state,
        "run_type": row.run_type,
        "dag_version_id": row.dag_version_id,
        "spec_version": row.spec_version,
        "spec_hash": row.spec_hash,
        "created_at": utc(row.created_at),
        "updated_at": utc(row.updated_at),
    }


def run_summary(row: Any) -> RunSummary:
    return RunSummary(**run_summary_fields(row))


def decision(row: Any) -> DecisionRecord:
    from airflow_wfe.core.ledger import (
        DecisionRecord,  # cold path: not loaded by task processes (core.ledger)
    )

    return DecisionRecord(
        step_id=row.step_id,
        kind=row.kind,
        outcome=row.outcome,
        reasons=tuple(json.loads(row.reasons)),
        policies=json.loads(row.policies),
        actor=row.actor,
        at=utc(row.at),
        details=json.loads(row.details),
    )


def business_metric(row: Any) -> BusinessMetric:
    """A business-metric row joined with its run (``dag_id``, ``run_id``)."""
    from airflow_wfe.core.ledger import (
        BusinessMetric,  # cold path: not loaded by task processes (core.ledger)
    )

    return BusinessMetric(
        dag_id=row.dag_id,
        run_id=row.run_id,
        step_id=row.step_id,
        map_index=row.map_index,
        name=row.name,
        value=float(row.value),
        unit=row.unit,
        at=utc(row.at),
    )


def compensation_request(row: Any) -> CompensationRequest:
    from airflow_wfe.core.ledger import (
        CompensationRequest,  # cold path: not loaded by task processes (core.ledger)
    )

    return CompensationRequest(
        dag_id=row.dag_id,
        run_id=row.run_id,
        actor=row.actor,
        at=utc(row.at),
        force=bool(row.force),
        reason=row.reason,
    )


def sealed_event(row: Any) -> SealedEvent:
    return SealedEvent(
        seq=int(row.seq),
        at=row.at,
        type=row.type,
        actor=row.actor,
        dag_id=row.dag_id,
        run_id=row.run_id,
        step_id=row.step_id,
        body=row.body,
        prev_hash=row.prev_hash,
        hash=row.hash,
        chain=row.chain,
    )


def _signed_mark(row: Any, seq: str, hash_: str) -> dict[str, Any]:
    # Checkpoints, the head and archive records share the signed columns; archives name the
    # position ``last_seq``/``last_hash``.
    mapping = row._mapping
    return {
        "seq": int(mapping[seq]),
        "hash": mapping[hash_],
        "at": row.at,
        "algorithm": row.algorithm,
        "key_id": row.key_id,
        "signature": row.signature,
    }


def checkpoint(row: Any, *, seq: str = "seq", hash_: str = "hash") -> Checkpoint:
    """A checkpoint row, or an archive row's closing mark (``seq="last_seq"``,
    ``hash_="last_hash"``)."""
    return Checkpoint(**_signed_mark(row, seq, hash_))


def head(row: Any) -> Head:
    """The chain head row (its signature may be missing: an unsigned store)."""
    return Head(**_signed_mark(row, "seq", "hash"))


def artifact_version(row: Any, *, with_content: bool = False) -> ArtifactVersion:
    """An artifact row (``size`` computed by the query; ``content`` only when selected)."""
    from airflow_wfe.core.artifact_records import (
        ArtifactVersion,  # cold path: not loaded by task processes (artifact records)
    )

    return ArtifactVersion(
        name=row.name,
        version=row.version,
        content_hash=row.content_hash,
        media_type=row.media_type,
        size=int(row.size),
        created_at=utc(row.created_at),
        created_by=row.created_by,
        content=bytes(row.content) if with_content else None,
    )
