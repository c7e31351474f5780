"""Versioned artifacts: ``wfe artifacts list|show --json`` and the results of their writes."""

from __future__ import annotations

from pydantic import Field, RootModel

from airflow_wfe.app.models.base import IsoDatetime, ResponseModel

__all__ = [
    "ArtifactActivation",
    "ArtifactChange",
    "ArtifactHistory",
    "ArtifactList",
    "ArtifactRegistration",
    "ArtifactRun",
    "ArtifactSummary",
    "ArtifactVersion",
]


class ArtifactSummary(ResponseModel):
    """An artifact as listed."""

    name: str = Field(description="artifact name, e.g. prompts/summary")
    active_version: str | None = Field(description="the active version (null: none yet)")
    version_count: int = Field(description="versions registered")
    last_activated_at: IsoDatetime | None = Field(description="last activation or rollback")


class ArtifactList(RootModel[list[ArtifactSummary]]):
    """Every artifact, by name (a JSON array)."""

    root: list[ArtifactSummary]


class ArtifactVersion(ResponseModel):
    """One immutable version (its content is not part of the JSON: it may be binary)."""

    name: str = Field(description="artifact name")
    version: str = Field(description="first 12 hex digits of the content's SHA-256")
    content_hash: str = Field(description="the content's full SHA-256")
    media_type: str = Field(description="media type of the content")
    size: int = Field(description="bytes")
    created_at: IsoDatetime = Field(description="when it was registered")
    created_by: str = Field(description="who registered it")


class ArtifactActivation(ResponseModel):
    """One entry of the activation history."""

    version: str = Field(description="the version made active")
    at: IsoDatetime = Field(description="when")
    actor: str = Field(description="who")
    reason: str | None = Field(description="why, if given")


class ArtifactRun(ResponseModel):
    """A run that used a version of the artifact."""

    dag_id: str = Field(description="the run's DAG")
    run_id: str = Field(description="the run")
    version: str = Field(description="the version it used")
    used_at: IsoDatetime = Field(description="its first use")


class ArtifactHistory(ResponseModel):
    """One artifact: its versions, activations (the last one is active) and the runs using them."""

    name: str = Field(description="artifact name")
    active_version: str | None = Field(description="the active version (null: none yet)")
    versions: list[ArtifactVersion] = Field(description="every version, oldest first")
    activations: list[ArtifactActivation] = Field(description="every activation, in order")
    runs: list[ArtifactRun] = Field(
        default_factory=list, description="runs that used a version, in the order of first use"
    )


class ArtifactChange(ResponseModel):
    """The result of an activation or a rollback."""

    name: str = Field(description="artifact name")
    version: str = Field(description="the active version now")
    previous: str | None = Field(description="the version active before (null: none)")
    changed: bool = Field(description="false when the version was already active")


class ArtifactRegistration(ResponseModel):
    """The result of registering content (and possibly activating it)."""

    registered: ArtifactVersion = Field(description="the version the content maps to")
    existing: ArtifactVersion | None = Field(
        description="the same version registered before (nothing was stored), or null"
    )
    activation: ArtifactChange | None = Field(description="set when activation was asked for")
