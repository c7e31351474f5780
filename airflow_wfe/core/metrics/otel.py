"""Emitting metrics over OTLP/HTTP with the OpenTelemetry SDK, for deployments without StatsD.

With Airflow's ``[metrics] otel_on`` the same ``wfe.*`` names (with the same prefix, ``airflow.`` by
default) go to an OpenTelemetry collector: a counter per :meth:`incr` name, a gauge per
:meth:`gauge` name, a histogram (unit ``ms``) per :meth:`timing` name, counters and histograms with
delta temporality (what each process added, as StatsD counts); with ``[wfe] statsd_tags`` the tags
become attributes. We build a meter provider of our own rather than borrowing Airflow's:
Airflow's OTel logger is not set up in every process (the same reason the StatsD emitter uses its
own client), and we never replace the process's global provider, so Airflow's own OTel metrics
are untouched.

The SDK exports on a background thread every ``interval_ms`` and once more when the process exits
(Airflow's task processes run the exit hooks registered after their fork). A provider built before
a fork has a dead export thread in the child: the emitter rebuilds its provider the first time it
is used in a new process. Like every emitter it never raises.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_wfe.core.metrics.filters import name_filter

if TYPE_CHECKING:
    from airflow_wfe.core.metrics.emitter import MetricsSettings, Tags

__all__ = ["OtelEmitter"]

log = logging.getLogger(__name__)

#: The instrumentation scope our instruments belong to.
SCOPE = "airflow_wfe"
#: Longest one export may take (retries included), at an interval or at process exit.
EXPORT_TIMEOUT_S = 2.0


class OtelEmitter:
    """Sends ``wfe.*`` metrics to an OTLP/HTTP endpoint; swallows and logs (once) any failure."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.active = True
        self._allowed = name_filter(settings)
        self._lock = threading.Lock()
        self._pid = -1
        self._provider: Any = None
        self._instruments: dict[tuple[str, str], Any] = {}
        self._warned = False
        self._build()

    def _build(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        # endpoint None: the exporter reads OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT, as OTel wants.
        # A bounded export: a collector that is away must not hold a task process's exit for
        # the exporter's default 10 s (nor its retries).
        # Deltas, as StatsD counts: every task process is short-lived and reports what it added,
        # so a collector sums them without one series per process.
        exporter = OTLPMetricExporter(
            endpoint=self.settings.otel_endpoint or None,
            timeout=EXPORT_TIMEOUT_S,
            preferred_temporality={
                Counter: AggregationTemporality.DELTA,
                Histogram: AggregationTemporality.DELTA,
            },
        )
        reader = PeriodicExportingMetricReader(
            exporter, export_interval_millis=self.settings.otel_interval_ms
        )
        self._provider = MeterProvider(
            resource=Resource.create({SERVICE_NAME: self.settings.otel_service}),
            metric_readers=[reader],
            shutdown_on_exit=True,
        )
        self._meter = self._provider.get_meter(SCOPE)
        self._instruments = {}
        self._pid = os.getpid()

    def _instrument(self, kind: str, name: str) -> Any:
        full = f"{self.settings.otel_prefix}.{name}" if self.settings.otel_prefix else name
        with self._lock:
            if self._pid != os.getpid():  # forked since: the inherited export thread is gone
                self._build()
            key = (kind, full)
            found = self._instruments.get(key)
            if found is None:
                if kind == "counter":
                    found = self._meter.create_counter(full)
                elif kind == "gauge":
                    found = self._meter.create_gauge(full)
                else:
                    found = self._meter.create_histogram(full, unit="ms")
                self._instruments[key] = found
            return found

    def _safely(self, send: Callable[[], None]) -> None:
        try:
            send()
        except Exception as exc:  # noqa: BLE001 - emission never raises, whatever went wrong
            if not self._warned:
                self._warned = True
                log.warning(
                    "wfe metrics: OpenTelemetry failed (%s); later failures are silent", exc
                )

    def _attributes(self, tags: Tags) -> dict[str, str] | None:
        if not (self.settings.tags and tags):
            return None
        return {str(k): str(v) for k, v in tags.items()}

    def incr(self, name: str, count: int = 1, *, tags: Tags = None) -> None:
        if self._allowed(name):
            self._safely(
                lambda: self._instrument("counter", name).add(count, self._attributes(tags))
            )

    def gauge(self, name: str, value: float, *, tags: Tags = None) -> None:
        if self._allowed(name):
            self._safely(lambda: self._instrument("gauge", name).set(value, self._attributes(tags)))

    def timing(self, name: str, milliseconds: float, *, tags: Tags = None) -> None:
        if self._allowed(name):
            self._safely(
                lambda: self._instrument("histogram", name).record(
                    milliseconds, self._attributes(tags)
                )
            )

    def flush(self, timeout_ms: int = 5000) -> bool:
        """Export what was recorded now, instead of at the next interval; True when the export
        finished within ``timeout_ms`` (delivered or given up on: the SDK does not say which)."""
        try:
            return bool(self._provider.force_flush(timeout_millis=timeout_ms))
        except Exception as exc:  # noqa: BLE001 - a metrics outage never fails a caller
            log.warning("wfe metrics: OpenTelemetry flush failed (%s)", exc)
            return False

    def close(self) -> None:
        """Export what is left and stop the export thread (the exit hook then has nothing to do)."""
        try:
            self._provider.shutdown()
        except Exception as exc:  # noqa: BLE001 - a metrics outage never fails a caller
            log.warning("wfe metrics: OpenTelemetry shutdown failed (%s)", exc)
