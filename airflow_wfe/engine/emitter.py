"""The process's metrics emitter, built from Airflow's ``[metrics]`` section on first use.

Apart from :mod:`airflow_wfe.engine.harness` because the listener module needs the emitter at import
and is imported by every process that loads plugins, task processes included: this module loads
no store, no SQLAlchemy and no recorder (the plugin import stays a few milliseconds).
"""

from __future__ import annotations

import functools
import os

from airflow_wfe.config import airflow_option, get_settings
from airflow_wfe.core.metrics import Emitter, MetricsSettings, build_emitter

__all__ = ["get_emitter", "metrics_settings", "reset_emitter"]

_TRUE = {"true", "1", "yes", "on", "t", "y"}


def metrics_settings() -> MetricsSettings:
    """Airflow's ``[metrics]`` section with the ``[wfe] statsd_*`` overrides applied."""

    def get(key: str, default: str) -> str:
        # Without importing Airflow where that reads the same values (the `wfe` command).
        return airflow_option("metrics", key, default) or default

    wfe = get_settings()
    statsd_on = get("statsd_on", "False").lower() in _TRUE
    return MetricsSettings(
        statsd_on=statsd_on if wfe.statsd_on is None else wfe.statsd_on,
        host=wfe.statsd_host or get("statsd_host", "localhost"),
        port=wfe.statsd_port or int(get("statsd_port", "8125")),
        prefix=wfe.statsd_prefix or get("statsd_prefix", "airflow"),
        ipv6=get("statsd_ipv6", "False").lower() in _TRUE,
        allow_list=wfe.statsd_allow_list or get("metrics_allow_list", ""),
        block_list=get("metrics_block_list", ""),
        tags=wfe.statsd_tags,
        deployment_dags=wfe.deployment_dags,
        dora_window_days=wfe.dora_window.total_seconds() / 86400,
        otel_on=get("otel_on", "False").lower() in _TRUE,
        otel_endpoint=_otel_endpoint(
            get("otel_host", "localhost"),
            get("otel_port", "8889"),
            get("otel_ssl_active", "False").lower() in _TRUE,
        ),
        otel_prefix=get("otel_prefix", "airflow"),
        otel_interval_ms=int(float(get("otel_interval_milliseconds", "60000"))),
        otel_service=get("otel_service", "airflow"),
    )


def _otel_endpoint(host: str, port: str, ssl: bool) -> str:
    """The OTLP/HTTP metrics URL of Airflow's (deprecated but honoured) ``otel_host``/``otel_port``;
    empty when the standard ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables say where, as Airflow does.
    """
    if os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        return ""
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if ssl else 'http'}://{shown}:{port}/v1/metrics"


@functools.cache
def get_emitter() -> Emitter:
    """The process's emitter, built from ``[metrics]`` and ``[wfe]`` on first use."""
    return build_emitter(metrics_settings())


def reset_emitter() -> None:
    """Forget the cached emitter (after changing ``[metrics]`` in the same process)."""
    get_emitter.cache_clear()
