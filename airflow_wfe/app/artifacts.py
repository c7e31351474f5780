"""Versioned artifacts: list, show, register, activate and roll back, through the store contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.artifacts import (
    ArtifactChange,
    ArtifactHistory,
    ArtifactList,
    ArtifactRegistration,
    ArtifactSummary,
    ArtifactVersion,
)
from airflow_wfe.core.artifact_records import version_for
from airflow_wfe.exceptions import ArtifactNotFoundError

if TYPE_CHECKING:
    from airflow_wfe.core import artifact_records as records

__all__ = [
    "activate",
    "active_content",
    "artifact_history",
    "list_artifacts",
    "register",
    "rollback",
]


def _without_content(value: Any) -> Any:
    # ``content`` may be binary and is fetched on its own (active_content), never in a response.
    if isinstance(value, dict):
        return {k: _without_content(v) for k, v in value.items() if k != "content"}
    if isinstance(value, list | tuple):
        return [_without_content(v) for v in value]
    return value


def _fields(record: Any) -> dict[str, Any]:
    fields: dict[str, Any] = _without_content(asdict(record))
    return fields


def _version(record: records.ArtifactVersion) -> ArtifactVersion:
    return ArtifactVersion.model_validate(_fields(record))


def list_artifacts(ctx: AppContext) -> ArtifactList:
    """Every artifact with its active version, by name."""
    return ArtifactList(
        [ArtifactSummary.model_validate(_fields(a)) for a in ctx.store.artifacts.list()]
    )


def artifact_history(ctx: AppContext, name: str) -> ArtifactHistory:
    """One artifact's versions (oldest first) and activations.

    Raises:
        ArtifactNotFoundError: no artifact by that name.
    """
    fields = _fields(ctx.store.artifacts.history(name))
    fields["runs"] = [_fields(use) for use in ctx.store.artifacts.runs_using(name)]
    for run in fields["runs"]:
        run.pop("name", None)
    return ArtifactHistory.model_validate(fields)


def active_content(ctx: AppContext, name: str) -> bytes:
    """The active version's content, byte for byte.

    Raises:
        ArtifactNotFoundError: no such artifact, or no active version yet.
    """
    return ctx.store.artifacts.active(name).content or b""


def _active_version(ctx: AppContext, name: str) -> str | None:
    try:
        return ctx.store.artifacts.active(name).version
    except ArtifactNotFoundError:
        return None


def activate(
    ctx: AppContext, name: str, version: str, *, actor: str, reason: str | None = None
) -> ArtifactChange:
    """Make ``version`` the active one (nothing is written when it already is).

    Raises:
        ArtifactNotFoundError: no such artifact or version.
    """
    before = _active_version(ctx, name)
    if before == version:
        return ArtifactChange(name=name, version=version, previous=before, changed=False)
    ctx.store.artifacts.activate(name, version, actor=actor, reason=reason)
    return ArtifactChange(name=name, version=version, previous=before, changed=True)


def rollback(
    ctx: AppContext, name: str, *, actor: str, reason: str | None = None
) -> ArtifactChange:
    """Re-activate the version that was active before the current one.

    Raises:
        ArtifactNotFoundError: no such artifact or no active version.
        ArtifactConflictError: nothing to roll back to (409).
    """
    before = ctx.store.artifacts.active(name).version
    after = ctx.store.artifacts.rollback(name, actor=actor, reason=reason)
    return ArtifactChange(name=name, version=after.version, previous=before, changed=True)


def register(
    ctx: AppContext,
    name: str,
    content: bytes,
    *,
    media_type: str,
    actor: str,
    activate_it: bool = False,
) -> ArtifactRegistration:
    """Store ``content`` as a version of ``name`` (the same content is the same version) and, with
    ``activate_it``, make it the active one.

    Raises:
        ArtifactError: a bad name or media type.
    """
    artifacts = ctx.store.artifacts
    try:
        existing: records.ArtifactVersion | None = artifacts.get(name, version_for(content))
    except ArtifactNotFoundError:
        existing = None
    registered = artifacts.register(name, content, media_type=media_type, actor=actor)
    change = activate(ctx, name, registered.version, actor=actor) if activate_it else None
    return ArtifactRegistration(
        registered=_version(registered),
        existing=None if existing is None else _version(existing),
        activation=change,
    )
