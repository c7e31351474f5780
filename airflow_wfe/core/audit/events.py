"""Audit events: what happened, who did it, to which run and step, with which versions.

An :class:`AuditEvent` is what a writer hands in; :func:`seal` turns it into a :class:`SealedEvent`
by giving it its place in the chain (sequence number and previous hash) and its own hash over the
canonical body. The body is the truth: the other fields of a sealed event are a copy kept for
querying, and verification checks that the copy still matches.

Two body layouts exist, and both verify (``docs/audit.md``):

* version 1 (older chains, archives): one canonical JSON object with every field, ``"v":1``;
* version 2 (written now): the *header*, a canonical JSON array ``[2,seq,prev,at,type,actor,dag_id,
  run_id,step_id]``, immediately followed by a canonical JSON object of the rest (``map_index``,
  ``payload``, ``versions``). The header is exactly what :func:`header` builds from the query
  columns, so a verifier checks the columns by comparing text (no JSON parsing), and the hash is
  still the SHA-256 of the whole body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any, Final, NamedTuple

from airflow_wfe.core.audit.canonical import canonical_json, format_time
from airflow_wfe.core.audit.partitions import MAIN

__all__ = [
    "BODY_VERSION",
    "GENESIS_HASH",
    "HEADER_PREFIX",
    "AuditEvent",
    "Draft",
    "EventType",
    "SealedEvent",
    "body_hash",
    "draft",
    "header",
    "seal",
    "seal_draft",
]

#: The ``prev`` of the first event of a chain.
GENESIS_HASH: Final = "0" * 64
#: Version of the body's layout written now (1: one JSON object with ``"v":1``; 2: header + rest).
BODY_VERSION: Final = 2
#: How a version-2 body begins (a version-1 body begins with ``{``).
HEADER_PREFIX: Final = "[2,"

_quote = encode_basestring  # what json.dumps(..., ensure_ascii=False) does to a str, in C
_decoder = json.JSONDecoder()


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
    #: The partition's chain the event belongs to (see :mod:`.partitions`).
    chain: str = MAIN

    def content(self) -> dict[str, Any]:
        """The body as data (for exports and readers), in the same shape for every layout."""
        return parse_body(self.body)


def parse_body(body: str) -> dict[str, Any]:
    """A body of either layout as one object: ``v``, ``seq``, ``prev``, ``at``, ``type``,
    ``actor``, ``dag_id``, ``run_id``, ``step_id``, ``map_index``, ``payload``, ``versions``.

    Raises:
        ValueError: the body is not JSON of a known layout.
    """
    if not body.startswith(HEADER_PREFIX):
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the body is not a JSON object")
        return data
    fields, end = _decoder.raw_decode(body)
    rest, stop = _decoder.raw_decode(body, end)
    if stop != len(body) or not isinstance(rest, dict) or len(fields) != len(_HEADER_KEYS):
        raise ValueError("not a version-2 body (header array, then one object)")
    return {**rest, **dict(zip(_HEADER_KEYS, fields, strict=True))}


_HEADER_KEYS: Final = ("v", "seq", "prev", "at", "type", "actor", "dag_id", "run_id", "step_id")


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def header(
    seq: int,
    prev_hash: str,
    at: str,
    type_: str,
    actor: str,
    dag_id: str | None,
    run_id: str | None,
    step_id: str | None,
) -> str:
    """The head of a version-2 body: the canonical JSON array of its query fields."""
    return (
        f"[2,{seq},{_quote(prev_hash)},{_quote(at)},{_quote(type_)},{_quote(actor)},"
        f"{_text(dag_id)},{_text(run_id)},{_text(step_id)}]"
    )


def body_hash(body: str) -> str:
    """The hash an event with this canonical body must carry."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _column(value: Any) -> str | None:
    return None if value is None else value if type(value) is str else str(value)


class Draft(NamedTuple):
    """An event ready to be sealed: everything but its place in the chain (made before the head is
    locked, so the lock is held for as little work as possible)."""

    at: str
    type: str
    actor: str
    dag_id: str | None
    run_id: str | None
    step_id: str | None
    #: The canonical JSON of the fields outside the header.
    rest: str


def draft(
    event: AuditEvent,
    payload: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
) -> Draft:
    """``event`` as a :class:`Draft`; ``payload``/``versions`` replace the event's (redacted)."""
    versions = event.versions if versions is None else versions
    payload = event.payload if payload is None else payload
    map_index = event.map_index
    kept = {k: v for k, v in versions.items() if v is not None}
    if map_index is None or type(map_index) is int:
        # The rest's canonical object written out, its keys in sorted order (JSON is
        # compositional: the same text as canonical_json of the whole; a test compares them).
        rest = (
            f'{{"map_index":{"null" if map_index is None else map_index},'
            f'"payload":{canonical_json(payload)},"versions":{canonical_json(kept)}}}'
        )
    else:
        rest = canonical_json({"map_index": map_index, "payload": payload, "versions": kept})
    return Draft(
        format_time(event.at),
        str(event.type),
        str(event.actor),
        _column(event.dag_id),
        _column(event.run_id),
        _column(event.step_id),
        rest,
    )


def seal_draft(d: Draft, seq: int, prev_hash: str, chain: str = MAIN) -> SealedEvent:
    """Give a drafted event its place after ``prev_hash`` in ``chain`` (version-2 body) and its
    hash."""
    at, type_, actor, dag_id, run_id, step_id, rest = d
    body = header(seq, prev_hash, at, type_, actor, dag_id, run_id, step_id) + rest
    # The frozen dataclass's __init__ sets each of the eleven fields through object.__setattr__,
    # which cost more than building and hashing the body; the instance is built here with the same
    # attributes (equal, hashable, frozen: a test compares it with SealedEvent(...)).
    event = _new(SealedEvent)
    _set(
        event,
        "__dict__",
        {
            "seq": seq,
            "at": at,
            "type": type_,
            "actor": actor,
            "dag_id": dag_id,
            "run_id": run_id,
            "step_id": step_id,
            "body": body,
            "prev_hash": prev_hash,
            "hash": _sha256(body.encode()).hexdigest(),
            "chain": chain,
        },
    )
    return event


_new = object.__new__
_set = object.__setattr__
_sha256 = hashlib.sha256


def seal(
    event: AuditEvent, seq: int, prev_hash: str, *, version: int = BODY_VERSION
) -> SealedEvent:
    """Give ``event`` its place after ``prev_hash`` and compute its hash.

    ``version=1`` writes the old layout (only to build old-style chains, e.g. in tests).
    """
    if version == 2:
        return seal_draft(draft(event), seq, prev_hash)
    if version != 1:
        raise ValueError(f"unknown body version {version}")
    at = format_time(event.at)
    body = canonical_json(
        {
            "v": 1,
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
