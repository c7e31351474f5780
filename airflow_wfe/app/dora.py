"""DORA figures (lead time, deployment frequency, MTTR, change failure rate) per deployment DAG."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.metrics import DoraFigures, DoraList
from airflow_wfe.core.metrics.dora import DEPLOYMENT_TAG
from airflow_wfe.engine.dora_metrics import dora_for

__all__ = ["deployment_dag_ids", "dora", "figures_for"]

log = logging.getLogger(__name__)

Note = Callable[[str], None]


def _tagged_in_airflow(tag: str, on_note: Note | None) -> set[str]:
    """DAG ids carrying ``tag`` in Airflow's metadata DB (empty when it cannot be read here)."""
    try:
        # Airflow's ORM is imported only by the commands that read tags: the rest of the
        # application layer (and the testing kit) must work without Airflow's database.
        from airflow.models.dag import DagTag
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return {
                row[0] for row in session.execute(select(DagTag.dag_id).where(DagTag.name == tag))
            }
    except Exception as exc:  # noqa: BLE001 - the tag is one of two sources; say so and go on
        message = f"cannot read DAG tags from Airflow ({type(exc).__name__})"
        if on_note is not None:
            on_note(message)
        else:
            log.warning("wfe.dora.tags_unavailable %s", message)
        return set()


def deployment_dag_ids(
    ctx: AppContext, explicit: Sequence[str] | None = None, *, on_note: Note | None = None
) -> list[str]:
    """The DAGs whose runs are deployments: ``explicit`` if given, else those tagged ``deployment``
    in Airflow plus the recorded DAGs matching ``[wfe] deployment_dags``."""
    if explicit:
        return sorted(set(explicit))
    recorded = ctx.store.known_dag_ids()
    patterns = ctx.settings.deployment_dags
    matched = {d for d in recorded if any(fnmatch.fnmatchcase(d, p) for p in patterns)}
    tagged = _tagged_in_airflow(DEPLOYMENT_TAG, on_note) & set(recorded)
    return sorted(matched | tagged)


def figures_for(
    ctx: AppContext, dag_id: str, *, window: timedelta, now: datetime | None = None
) -> DoraFigures:
    """The DORA figures of one DAG over ``window`` ending at ``now``: two bounded store reads,
    the same ones the gauges emitted at run end are computed from."""
    f = dora_for(ctx.store, dag_id, window=window, now=now)
    return DoraFigures(
        dag_id=f.dag_id,
        window_start=f.window_start,
        window_end=f.window_end,
        deployments=f.deployments,
        successes=f.successes,
        failures=f.failures,
        deployment_frequency_per_day=f.deployment_frequency_per_day,
        lead_time_seconds=f.lead_time_seconds,
        mttr_seconds=f.mttr_seconds,
        change_failure_rate=f.change_failure_rate,
        open_failure_since=f.open_failure_since,
    )


def dora(
    ctx: AppContext,
    *,
    dag_ids: Sequence[str] | None = None,
    window: timedelta = timedelta(days=30),
    on_note: Note | None = None,
) -> DoraList:
    """DORA figures of every deployment DAG (see :func:`deployment_dag_ids`), by DAG id."""
    now = datetime.now(UTC)
    return DoraList(
        [
            figures_for(ctx, dag_id, window=window, now=now)
            for dag_id in deployment_dag_ids(ctx, dag_ids, on_note=on_note)
        ]
    )
