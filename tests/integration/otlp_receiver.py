"""An OTLP/HTTP metrics receiver for tests: what a collector would get, decoded.

A small HTTP server on 127.0.0.1 that decodes each ``POST /v1/metrics`` body with
``opentelemetry-proto`` (the collector's own message types) and keeps the requests.
"""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

__all__ = ["Receiver", "running_receiver"]


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
        """Per counter name the sum of every (delta) point; per gauge name the last value."""
        found: dict[str, float] = {}
        for point in self.points(prefix):
            if point["kind"] == "sum":
                found[point["name"]] = found.get(point["name"], 0) + point["value"]
            elif point["kind"] == "gauge":
                found[point["name"]] = point["value"]
        return found


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


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A :class:`Receiver` serving on a thread until the block ends."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
