"""Metrics over OpenTelemetry: what an OTLP/HTTP receiver on 127.0.0.1 gets, decoded.

The receiver is a small HTTP server that decodes each ``POST /v1/metrics`` body with
``opentelemetry-proto`` (the collector's own message types), the way a collector would. Airflow's
``[metrics] otel_on`` turns the wfe emitter to OTLP; the names are the StatsD ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from otlp_receiver import Receiver, running_receiver

from airflow_wfe.core.metrics import MetricsSettings, build_emitter
from airflow_wfe.core.metrics.otel import EXPORT_TIMEOUT_S, OtelEmitter
from airflow_wfe.engine.emitter import get_emitter
from airflow_wfe.engine.harness import reset_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as server:
        yield server


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


def test_counters_are_deltas_so_processes_add_up(receiver: Receiver) -> None:
    first, second = (
        build_emitter(MetricsSettings(otel_on=True, otel_endpoint=receiver.url)) for _ in range(2)
    )
    assert isinstance(first, OtelEmitter)
    assert isinstance(second, OtelEmitter)
    first.incr("wfe.step.state.running")
    first.flush()
    first.incr("wfe.step.state.running")
    first.close()
    second.incr("wfe.step.state.running", 3)
    second.close()
    values = [p["value"] for p in receiver.points("airflow.wfe.step.state.running")]
    assert sorted(values) == [1, 1, 3]  # what each export added, not running totals
    assert receiver.totals("airflow.wfe.")["airflow.wfe.step.state.running"] == 5
    temporality = {
        m.sum.aggregation_temporality
        for r in receiver.requests
        for rm in r.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert temporality == {1}  # AGGREGATION_TEMPORALITY_DELTA
