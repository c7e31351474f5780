"""Metrics over OpenTelemetry: what an OTLP/HTTP receiver on 127.0.0.1 gets, decoded.

The receiver is a small HTTP server that decodes each ``POST /v1/metrics`` body with
``opentelemetry-proto`` (the collector's own message types), the way a collector would. Airflow's
``[metrics] otel_on`` turns the wfe emitter to OTLP; the names are the StatsD ones.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from airflow_wfe.core.metrics import MetricsSettings, build_emitter
from airflow_wfe.core.metrics.otel import EXPORT_TIMEOUT_S, OtelEmitter
from airflow_wfe.engine.emitter import get_emitter
from airflow_wfe.engine.harness import reset_runtime

pytestmark = pytest.mark.integration


class Receiver(http.server.ThreadingHTTPServer):
    """Collects every metric data point posted to /v1/metrics."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/metrics"

    def points(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every data point: name, kind (sum, gauge, histogram), value or count/sum, attributes."""
        found = []
        for request in self.requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if not metric.name.startswith(prefix):
                            continue
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            entry: dict[str, Any] = {
                                "name": metric.name,
                                "kind": kind,
                                "scope": scope.scope.name,
                                "attributes": {
                                    a.key: a.value.string_value for a in point.attributes
                                },
                            }
                            if kind == "histogram":
                                entry.update(count=point.count, sum=point.sum, unit=metric.unit)
                            else:
                                entry["value"] = (
                                    point.as_int if point.HasField("as_int") else point.as_double
                                )
                            found.append(entry)
        return found

    def totals(self, prefix: str) -> dict[str, float]:
        """The last reported value per (counter or gauge) name: cumulative sums, latest gauges."""
        return {p["name"]: p["value"] for p in self.points(prefix) if p["kind"] != "histogram"}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        self.server.requests.append(request)
        reply = ExportMetricsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_emitter_sends_counters_gauges_and_histograms(receiver: Receiver) -> None:
    emitter = build_emitter(
        MetricsSettings(otel_on=True, otel_endpoint=receiver.url, tags=True, otel_service="wfe-t")
    )
    assert isinstance(emitter, OtelEmitter)
    emitter.incr("wfe.run.state.failed", tags={"dag_id": "etl"})
    emitter.incr("wfe.run.state.failed", tags={"dag_id": "etl"})
    emitter.gauge("wfe.dora.mttr.etl", 42.5)
    emitter.timing("wfe.step.duration", 1500.0, tags={"dag_id": "etl", "step": "load"})
    emitter.close()  # exports what is left, as at process exit

    assert receiver.paths == ["/v1/metrics"]
    points = {p["name"]: p for p in receiver.points("airflow.wfe.")}
    assert points["airflow.wfe.run.state.failed"] == {
        "name": "airflow.wfe.run.state.failed",
        "kind": "sum",
        "scope": "airflow_wfe",
        "attributes": {"dag_id": "etl"},
        "value": 2,
    }
    assert points["airflow.wfe.dora.mttr.etl"]["kind"] == "gauge"
    assert points["airflow.wfe.dora.mttr.etl"]["value"] == 42.5
    duration = points["airflow.wfe.step.duration"]
    assert (duration["kind"], duration["count"], duration["sum"], duration["unit"]) == (
        "histogram",
        1,
        1500.0,
        "ms",
    )
    assert duration["attributes"] == {"dag_id": "etl", "step": "load"}
    service = receiver.requests[0].resource_metrics[0].resource.attributes
    assert {a.key: a.value.string_value for a in service}["service.name"] == "wfe-t"


def test_the_allow_list_applies_as_for_statsd(receiver: Receiver) -> None:
    emitter = build_emitter(
        MetricsSettings(otel_on=True, otel_endpoint=receiver.url, allow_list=r"wfe\.run\.")
    )
    emitter.incr("wfe.run.state.failed")
    emitter.incr("wfe.step.state.failed")
    assert isinstance(emitter, OtelEmitter)
    emitter.close()
    assert set(receiver.totals("airflow.")) == {"airflow.wfe.run.state.failed"}


def test_a_governed_run_reports_through_airflows_otel_settings(
    dagbag: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = receiver.server_address[1]
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "False")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__OTEL_PORT", str(port))
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    reset_runtime()
    try:
        dag_run = dagbag.get_dag("wfe_example_retry_fail").test()
        assert dag_run.state == "failed"
        emitter = get_emitter()
        assert isinstance(emitter, OtelEmitter)
        emitter.close()
    finally:
        monkeypatch.undo()
        reset_runtime()
    totals = receiver.totals("airflow.wfe.")
    for name in (
        "airflow.wfe.run.state.created",
        "airflow.wfe.run.state.validated",
        "airflow.wfe.run.state.running",
        "airflow.wfe.run.state.failed",
        "airflow.wfe.step.state.retrying",
        "airflow.wfe.step.state.upstream_failed",
    ):
        assert totals.get(name) == 1, (name, totals)
    assert totals["airflow.wfe.step.state.running"] == 3  # prepare, and flaky_publish twice


def test_a_collector_that_is_away_never_fails_or_holds_the_caller() -> None:
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    emitter = build_emitter(
        MetricsSettings(otel_on=True, otel_endpoint=f"http://127.0.0.1:{port}/v1/metrics")
    )
    assert isinstance(emitter, OtelEmitter)
    started = time.monotonic()
    emitter.incr("wfe.run.state.failed")
    emitter.flush(timeout_ms=5000)
    emitter.close()
    # The export gives up within its bound (EXPORT_TIMEOUT_S), retries included; nothing raised.
    assert time.monotonic() - started < 2 * EXPORT_TIMEOUT_S + 1.0
