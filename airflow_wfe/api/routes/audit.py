"""The audit trail as a whole: verification and a streamed export.

Both read the events of every DAG, so they need read access to the audit log of every DAG; the
export of one DAG (``?dag_id=``) needs it on that DAG only. A trail filtered by the caller's rights
could not be re-verified outside (its hash links would break), so a partial export is never made
silently. Writing a checkpoint is an action (:mod:`airflow_wfe.api.routes.actions`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query  # noqa: TID253 - loaded only by the lazily built API app
from fastapi.responses import StreamingResponse  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.security import READ_DAG_OR_EVERY_AUDIT_LOG, READ_EVERY_AUDIT_LOG
from airflow_wfe.app import audit
from airflow_wfe.app.models import AuditVerification

__all__ = ["MEDIA_TYPES", "router"]

router = APIRouter(prefix="/audit", tags=["audit"])

#: What each export format is served as.
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}

_SINCE = Query(description="from this time on: 2026-11-01, 2026-11-01T12:00:00Z, or 7d, 12h")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return audit.parse_since(value)
    except ValueError as exc:
        raise HTTPException(422, f"since: {exc}") from None


@router.get(
    "/verify",
    response_model=AuditVerification,
    dependencies=[READ_EVERY_AUDIT_LOG],
    summary="Verify the audit chain: hashes, links, signatures, replay",
)
def verify(ctx: ContextDep, since: Annotated[str | None, _SINCE] = None) -> AuditVerification:
    """The same object as ``wfe audit verify --json`` (for the store; archives stay a CLI matter)."""
    return audit.verify(ctx, since=_since(since))


@router.get(
    "/export",
    dependencies=[READ_DAG_OR_EVERY_AUDIT_LOG],
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
    summary="Export audit events as JSON lines or CSV (streamed)",
)
def export(
    ctx: ContextDep,
    fmt: Annotated[
        Literal["jsonl", "csv"], Query(alias="format", description="jsonl or csv")
    ] = "jsonl",
    dag_id: Annotated[str | None, Query(description="only this DAG's events")] = None,
    run_id: Annotated[str | None, Query(description="only this run's events")] = None,
    since: Annotated[str | None, _SINCE] = None,
) -> StreamingResponse:
    """The same lines as ``wfe audit export --format FORMAT``, produced as they are read."""
    found = audit.export(ctx, fmt=fmt, dag_id=dag_id, run_id=run_id, since=_since(since))

    def lines() -> Iterator[str]:
        if found.header is not None:
            yield found.header
        yield from found.lines

    name = f"wfe-audit.{fmt}"
    return StreamingResponse(
        lines(),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
