"""Metrics: names, emitters and the process-wide emitter configured from ``[metrics]``."""

from __future__ import annotations

import functools

from airflow_wfe.metrics.emitter import (
    Emitter,
    MetricsSettings,
    NullEmitter,
    StatsdEmitter,
    build_emitter,
)

__all__ = [
    "Emitter",
    "MetricsSettings",
    "NullEmitter",
    "StatsdEmitter",
    "build_emitter",
    "get_emitter",
    "reset_emitter",
]


def _metrics_settings() -> MetricsSettings:
    from airflow.sdk import conf

    def get(key: str, default: str) -> str:
        return str(conf.get("metrics", key, fallback=default) or default)

    return MetricsSettings(
        statsd_on=get("statsd_on", "False").lower() in {"true", "1", "yes", "on"},
        host=get("statsd_host", "localhost"),
        port=int(get("statsd_port", "8125")),
        prefix=get("statsd_prefix", "airflow"),
        ipv6=get("statsd_ipv6", "False").lower() in {"true", "1", "yes", "on"},
        allow_list=str(conf.get("metrics", "metrics_allow_list", fallback="") or ""),
        block_list=str(conf.get("metrics", "metrics_block_list", fallback="") or ""),
    )


@functools.cache
def get_emitter() -> Emitter:
    """The process's emitter, built from Airflow's ``[metrics]`` section on first use."""
    return build_emitter(_metrics_settings())


def reset_emitter() -> None:
    """Forget the cached emitter (after changing ``[metrics]`` in the same process)."""
    get_emitter.cache_clear()
