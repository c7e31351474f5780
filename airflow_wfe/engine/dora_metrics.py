"""DORA figures from the store, and the gauges sent when a deployment run ends.

The arithmetic is pure and lives in the core (:mod:`airflow_wfe.core.metrics.dora`); this module is
the part that reads: two bounded queries through the :class:`~airflow_wfe.store.contract.Store`
contract (so any store implementation answers them), then the figures, then the gauges.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow_wfe.core.metrics import names
from airflow_wfe.core.metrics.dora import DoraFigures, compute_dora

if TYPE_CHECKING:
    from airflow_wfe.core.metrics.emitter import Emitter
    from airflow_wfe.store.contract import Store

__all__ = ["dora_for", "emit_dora"]

log = logging.getLogger("airflow_wfe.engine.dora_metrics")


def dora_for(
    store: Store, dag_id: str, *, window: timedelta, now: datetime | None = None
) -> DoraFigures:
    """The DORA figures of one deployment DAG over ``window`` ending ``now`` (default: the clock)."""
    end = now or datetime.now(UTC)
    runs = store.run_histories([dag_id], end - window)
    keys = [run.change_key for run in runs if run.change_key]
    first_seen = store.version_first_seen(dag_id, [k for k in keys if k])
    return compute_dora(dag_id, runs, window_end=end, window=window, first_seen=first_seen)


def emit_dora(store: Store, emitter: Emitter, dag_id: str, *, window: timedelta) -> None:
    """Send the DORA gauges of ``dag_id`` (called when one of its runs ends). Never raises: the
    run's record is already stored, and gauges are best effort."""
    try:
        figures = dora_for(store, dag_id, window=window)
    except Exception as exc:  # noqa: BLE001 - gauges are best effort; the run's record is stored
        log.warning("wfe.metrics.dora_error dag_id=%s error=%s", dag_id, exc)
        return
    tags = {"dag_id": dag_id}
    emitter.gauge(
        names.dora(names.DORA_DEPLOYMENT_FREQUENCY, dag_id),
        round(figures.deployment_frequency_per_day, 6),
        tags=tags,
    )
    if figures.lead_time_seconds is not None:
        emitter.gauge(
            names.dora(names.DORA_LEAD_TIME, dag_id), round(figures.lead_time_seconds, 3), tags=tags
        )
    if figures.mttr_seconds is not None:
        emitter.gauge(
            names.dora(names.DORA_MTTR, dag_id), round(figures.mttr_seconds, 3), tags=tags
        )
    if figures.change_failure_rate is not None:
        emitter.gauge(
            names.dora(names.DORA_CHANGE_FAILURE_RATE, dag_id),
            round(figures.change_failure_rate, 6),
            tags=tags,
        )
