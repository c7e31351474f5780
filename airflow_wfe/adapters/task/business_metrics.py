"""Business metrics from steps: ROI, CPA, CTR, cost per generation, stored with the run and emitted.

A step calls :func:`record_business_metric` with a name, a value and a unit; the run and step come
from Airflow's task context, so the call is one line in task code::

    from airflow_wfe import record_business_metric

    @task
    def evaluate(stats: dict) -> None:
        record_business_metric("ctr", stats["clicks"] / stats["impressions"], unit="ratio")
        record_business_metric("cpa", stats["spend"] / stats["conversions"], unit="EUR")

The value is stored in the state store with the run (``wfe report`` reads it back; a metric named
``cost`` feeds its cost section) and sent as the gauge ``wfe.business.<name>.<dag_id>``.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime
from typing import Any, Final

from airflow_wfe.core.metrics import names
from airflow_wfe.core.metrics.logfmt import log_kv

__all__ = ["COST_METRIC", "record_business_metric"]

log = logging.getLogger("airflow_wfe.core.metrics")

#: The business metric ``wfe report`` reads as a step's cost until budgets and the cost ledger land.
COST_METRIC: Final = "cost"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


def _task_identity() -> tuple[str, str, str, int]:
    """(dag_id, run_id, task_id, map_index) of the running task, from Airflow's task context."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    raw = getattr(ti, "map_index", -1)
    return ti.dag_id, ti.run_id, ti.task_id, -1 if raw is None else int(raw)


def mask_text(text: str | None) -> str | None:
    """``text`` through Airflow's secrets masker (the Task SDK's), if there is one."""
    if text is None:
        return None
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # pragma: no cover - an Airflow without the Task SDK's masker
        return text
    return str(redact(text))


def record_business_metric(
    name: str,
    value: float,
    unit: str | None = None,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    step_id: str | None = None,
    map_index: int = -1,
    store: Any = None,
    emitter: Any = None,
    at: datetime | None = None,
) -> bool:
    """Record one business metric of the current run; returns whether it was stored.

    Called inside a task, it needs only ``name``, ``value`` and ``unit``. Outside a task (a script,
    a test) pass ``dag_id`` and ``run_id`` (and ``store``/``emitter`` to use other than the
    process's). A run that is not governed, or a store that cannot be reached, is logged and the
    gauge still goes out: a metric never fails the step that measured it.

    Args:
        name: lower-case ``[a-z0-9_]``, starting with a letter (it becomes a metric name segment).
        value: a finite number.
        unit: free text kept with the value (``EUR``, ``ratio``, ``clicks``).

    Raises:
        ValueError: the name or the value is not acceptable (a bug in the caller, reported loudly).
    """
    if not _NAME.match(name):
        raise ValueError(
            f"business metric name {name!r}: use lower-case letters, digits and '_', starting "
            "with a letter (at most 100 characters)"
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"business metric {name!r}: value must be a finite number, got {value!r}")
    # The unit is free text a DAG author writes: Airflow's masker hides every secret it knows
    # (connection passwords, sensitive variables, mask_secret values) before it is stored, tagged
    # or logged. A name holding one is refused without echoing it.
    unit = mask_text(unit)
    if mask_text(name) != name:
        raise ValueError("business metric name: it contains a value Airflow masks as a secret")
    if dag_id is None or run_id is None:
        dag_id, run_id, step_id, map_index = _task_identity()
    when = at or datetime.now(UTC)
    if emitter is None:
        from airflow_wfe.engine.emitter import get_emitter

        emitter = get_emitter()
    tags = {"dag_id": dag_id, "step": step_id or "", "unit": unit or ""}
    emitter.gauge(names.business(name, dag_id), number, tags=tags)
    try:
        if store is None:
            from airflow_wfe.engine.harness import get_runtime_store

            store = get_runtime_store()
        store.add_business_metric(
            dag_id,
            run_id,
            step_id=step_id,
            map_index=map_index,
            name=name,
            value=number,
            unit=unit,
            at=when,
        )
    except Exception as exc:  # noqa: BLE001 - the step's work is done; losing a metric is not fatal
        log_kv(
            log,
            logging.WARNING,
            "wfe.business_metric.not_stored",
            dag_id=dag_id,
            run_id=run_id,
            step=step_id,
            metric=name,
            error=f"{type(exc).__name__}: {exc}",
        )
        return False
    log_kv(
        log,
        logging.INFO,
        "wfe.business_metric",
        dag_id=dag_id,
        run_id=run_id,
        step=step_id,
        metric=name,
        value=number,
        unit=unit,
    )
    return True
