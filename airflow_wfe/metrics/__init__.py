"""Metrics: names, emitters, the process-wide emitter, DORA figures and business metrics.

The process's emitter follows Airflow's ``[metrics]`` section (host, port, prefix, allow and block
lists), each overridable under ``[wfe]``, so ``wfe.*`` lands beside Airflow's own metrics by default
and can be sent elsewhere without touching Airflow's. Names are in :mod:`airflow_wfe.metrics.names`
and documented in docs/metrics.md.

``record_business_metric`` is the API for steps (``from airflow_wfe.metrics import
record_business_metric``); it is loaded lazily, because this package is imported by the recorder of
every task process and must stay cheap.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from airflow_wfe.metrics.emitter import (
    Emitter,
    MetricsSettings,
    NullEmitter,
    RecordingEmitter,
    StatsdEmitter,
    build_emitter,
)

if TYPE_CHECKING:
    from airflow_wfe.metrics.business import record_business_metric

__all__ = [
    "Emitter",
    "MetricsSettings",
    "NullEmitter",
    "RecordingEmitter",
    "StatsdEmitter",
    "build_emitter",
    "get_emitter",
    "metrics_settings",
    "record_business_metric",
    "reset_emitter",
]

_TRUE = {"true", "1", "yes", "on", "t", "y"}


def metrics_settings() -> MetricsSettings:
    """Airflow's ``[metrics]`` section with the ``[wfe] statsd_*`` overrides applied."""
    from airflow.sdk import conf

    from airflow_wfe.config import get_settings

    def get(key: str, default: str) -> str:
        return str(conf.get("metrics", key, fallback=default) or default)

    wfe = get_settings()
    statsd_on = get("statsd_on", "False").lower() in _TRUE
    return MetricsSettings(
        statsd_on=statsd_on if wfe.statsd_on is None else wfe.statsd_on,
        host=wfe.statsd_host or get("statsd_host", "localhost"),
        port=wfe.statsd_port or int(get("statsd_port", "8125")),
        prefix=wfe.statsd_prefix or get("statsd_prefix", "airflow"),
        ipv6=get("statsd_ipv6", "False").lower() in _TRUE,
        allow_list=wfe.statsd_allow_list
        or str(conf.get("metrics", "metrics_allow_list", fallback="") or ""),
        block_list=str(conf.get("metrics", "metrics_block_list", fallback="") or ""),
        tags=wfe.statsd_tags,
        deployment_dags=wfe.deployment_dags,
        dora_window_days=wfe.dora_window.total_seconds() / 86400,
    )


@functools.cache
def get_emitter() -> Emitter:
    """The process's emitter, built from ``[metrics]`` and ``[wfe]`` on first use."""
    return build_emitter(metrics_settings())


def reset_emitter() -> None:
    """Forget the cached emitter (after changing ``[metrics]`` in the same process)."""
    get_emitter.cache_clear()


def __getattr__(name: str) -> Any:
    if name == "record_business_metric":
        from airflow_wfe.metrics.business import record_business_metric

        return record_business_metric
    raise AttributeError(f"module 'airflow_wfe.metrics' has no attribute {name!r}")
