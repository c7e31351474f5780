"""The local spool as the faces see it: ``wfe spool status`` and ``wfe spool flush``.

The spool holds run and step facts the store could not take (docs/reliability.md); these use cases
report what waits on this host and replay it through the recorder, in order.
"""

from __future__ import annotations

from pydantic import Field

from airflow_wfe.app.models.base import ResponseModel
from airflow_wfe.config import get_settings

__all__ = ["SpoolFileStatus", "SpoolFlush", "SpoolStatus", "flush_spool", "spool_status"]


class SpoolFileStatus(ResponseModel):
    """One spool file: one host's facts for one store."""

    path: str = Field(description="the spool file")
    host: str = Field(description="the host that wrote it")
    store: str = Field(description="the store its facts are for (password masked)")
    current_store: bool = Field(description="whether that is the store this process is set to")
    pending: int = Field(description="facts still waiting")
    size_bytes: int = Field(description="size of the file")
    oldest: str | None = Field(description="time of the oldest waiting fact (ISO 8601)")
    newest: str | None = Field(description="time of the newest waiting fact (ISO 8601)")
    runs: dict[str, int] = Field(description="waiting facts per run, keyed DAG_ID/RUN_ID")


class SpoolStatus(ResponseModel):
    """Every spool file in ``[wfe] spool_path``."""

    folder: str = Field(description="[wfe] spool_path")
    max_bytes: int = Field(description="size bound of one file ([wfe] spool_max_mb)")
    pending: int = Field(description="facts waiting in all files")
    files: list[SpoolFileStatus] = Field(description="one entry per spool file")


class SpoolFlush(ResponseModel):
    """What ``wfe spool flush`` did for this host's spool of the configured store."""

    path: str = Field(description="the spool file flushed")
    replayed: int = Field(description="facts written to the store (or found already there)")
    superseded: int = Field(description="facts dropped: the store already held a later state")
    rejected: int = Field(description="facts the store refused (kept in <file>.rejected)")
    remaining: int = Field(description="facts still waiting")
    complete: bool = Field(description="nothing is left for this store")
    error: str | None = Field(description="why the flush stopped early, if it did")


def spool_status() -> SpoolStatus:
    """Every spool file in the configured folder, with what still waits in it."""
    from airflow_wfe.engine import spool
    from airflow_wfe.engine.harness import spool_place

    settings = get_settings()
    mine = spool_place().file
    files = [
        SpoolFileStatus(
            path=str(found.path),
            host=found.host,
            store=found.store,
            current_store=found.path == mine,
            pending=found.pending,
            size_bytes=found.size,
            oldest=found.oldest,
            newest=found.newest,
            runs=found.runs,
        )
        for found in spool.status(settings.spool_path)
    ]
    return SpoolStatus(
        folder=str(settings.spool_path),
        max_bytes=settings.spool_max_mb * 1024 * 1024,
        pending=sum(f.pending for f in files),
        files=files,
    )


def flush_spool() -> SpoolFlush:
    """Replay this host's spool for the configured store into it, in order, now."""
    from airflow_wfe.engine.harness import get_recorder, spool_place

    result = get_recorder().flush_spool()
    return SpoolFlush(
        path=str(spool_place().file),
        replayed=result.replayed,
        superseded=result.superseded,
        rejected=result.rejected,
        remaining=result.remaining,
        complete=result.complete,
        error=result.error,
    )


def spooled_for_run(dag_id: str, run_id: str) -> int:
    """How many facts of this run wait in this host's spool for the configured store."""
    from airflow_wfe.engine.harness import spool_place

    path = spool_place().file
    if not path.exists():
        return 0
    from airflow_wfe.engine import spool

    return spool.pending_for_run(path, dag_id, run_id)
