"""What the artifact registry hands back: frozen records that serialise straight to JSON."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

__all__ = [
    "VERSION_LENGTH",
    "ArtifactActivation",
    "ArtifactHistory",
    "ArtifactSummary",
    "ArtifactUse",
    "ArtifactVersion",
    "to_jsonable",
    "version_for",
]

#: Hex digits of the SHA-256 of the content that make up a version id.
VERSION_LENGTH: Final = 12


@dataclass(frozen=True)
class ArtifactVersion:
    """One immutable version. ``content`` is loaded by :meth:`~airflow_wfe.store.artifacts.ArtifactRegistry.get`,
    :meth:`~ArtifactRegistry.active` and the writers, and left ``None`` in histories."""

    name: str
    version: str
    content_hash: str
    media_type: str
    size: int
    created_at: datetime
    created_by: str
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ArtifactActivation:
    """One entry of an artifact's activation history."""

    version: str
    at: datetime
    actor: str
    reason: str | None


@dataclass(frozen=True)
class ArtifactSummary:
    """An artifact as listed."""

    name: str
    active_version: str | None
    version_count: int
    last_activated_at: datetime | None


@dataclass(frozen=True)
class ArtifactHistory:
    """Every version of an artifact (oldest first, without content) and every activation (in
    order; the last one is the active version)."""

    name: str
    active_version: str | None
    versions: tuple[ArtifactVersion, ...]
    activations: tuple[ArtifactActivation, ...]


@dataclass(frozen=True)
class ArtifactUse:
    """A run that used a version of an artifact."""

    dag_id: str
    run_id: str
    version: str
    used_at: datetime
    #: the artifact's name (set where a run's uses of several artifacts are listed)
    name: str | None = None


def version_for(content: bytes) -> str:
    """The version id of ``content``: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(content).hexdigest()[:VERSION_LENGTH]


def to_jsonable(record: Any) -> Any:
    """A record (or a list of them) as JSON-ready data: datetimes in ISO 8601, ``content`` left out
    (fetch it with :meth:`~airflow_wfe.store.artifacts.ArtifactRegistry.get`; it may be binary)."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items() if k != "content"}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    if isinstance(record, list | tuple):
        return [to_jsonable(item) for item in record]
    return convert(asdict(record))
