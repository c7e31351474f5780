"""Audit events: what happened, who did it, to which run and step, with which versions.

An :class:`AuditEvent` is what a writer hands in; :func:`seal` turns it into a :class:`SealedEvent`
by giving it its place in the chain (sequence number and previous hash) and its own hash over the
canonical body. The body is the truth: the other fields of a sealed event are a copy kept for
querying, and verification checks that the copy still matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from airflow_wfe.audit.canonical import canonical_json, format_time

__all__ = [
    "BODY_VERSION",
    "GENESIS_HASH",
    "AuditEvent",
    "EventType",
    "SealedEvent",
    "body_hash",
    "seal",
]

#: The ``prev`` of the first event of a chain.
GENESIS_HASH: Final = "0" * 64
#: Version of the body's layout, stored in every body as ``v``.
BODY_VERSION: Final = 1


class EventType(StrEnum):
    """Every kind of audit event. Values are stable: exports and queries filter on them."""

    RUN_TRANSITION = "run.transition"
    STEP_TRANSITION = "step.transition"
    #: The state machine refused a reported or requested change (a violation: nothing changed).
    TRANSITION_REFUSED = "transition.refused"
    #: A person asked for something through the CLI or the REST API (compensation, rollback...).
    MANUAL_ACTION = "manual.action"
    #: A change made in Airflow itself (UI, REST): a state set by hand, a clear, a trigger, a delete.
    AIRFLOW_CHANGE = "airflow.change"
    #: A change made in Airflow that breaks the state machine.
    VIOLATION = "policy.violation"
    ARTIFACT_REGISTERED = "artifact.registered"
    ARTIFACT_ACTIVATED = "artifact.activated"
    ARTIFACT_USED = "artifact.used"
    #: The harness itself failed to record something (the run carried on).
    PLUGIN_ERROR = "plugin.error"
    #: Old events moved to an archive file (the chain goes on from the archive's last hash).
    ARCHIVED = "audit.archived"
    POLICY_DECISION = "policy.decision"
    #: A person's answer to an approval request (or the default taken at its timeout).
    APPROVAL = "approval"
    #: A step's spending written to the cost ledger.
    COST = "cost.spent"


@dataclass(frozen=True)
class AuditEvent:
    """One fact for the trail, before it has a place in the chain."""

    type: str
    actor: str
    at: datetime
    dag_id: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    map_index: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: Versions involved: ``dag_version_id``, ``spec_version``, ``spec_hash``, ``policy``, artifacts.
    versions: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SealedEvent:
    """An event with its place in the chain: ``hash`` is the SHA-256 of ``body``."""

    seq: int
    at: str
    type: str
    actor: str
    dag_id: str | None
    run_id: str | None
    step_id: str | None
    body: str
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """The body as data (for exports and readers)."""
        data: dict[str, Any] = json.loads(self.body)
        return data


def body_hash(body: str) -> str:
    """The hash an event with this canonical body must carry."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def seal(event: AuditEvent, seq: int, prev_hash: str) -> SealedEvent:
    """Give ``event`` its place after ``prev_hash`` and compute its hash."""
    at = format_time(event.at)
    body = canonical_json(
        {
            "v": BODY_VERSION,
            "seq": seq,
            "prev": prev_hash,
            "at": at,
            "type": str(event.type),
            "actor": event.actor,
            "dag_id": event.dag_id,
            "run_id": event.run_id,
            "step_id": event.step_id,
            "map_index": event.map_index,
            "payload": dict(event.payload),
            "versions": {k: v for k, v in event.versions.items() if v is not None},
        }
    )
    return SealedEvent(
        seq=seq,
        at=at,
        type=str(event.type),
        actor=event.actor,
        dag_id=event.dag_id,
        run_id=event.run_id,
        step_id=event.step_id,
        body=body,
        prev_hash=prev_hash,
        hash=body_hash(body),
    )
