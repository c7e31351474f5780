"""Emitting metrics: a protocol, a StatsD implementation and a null one.

Emission is fire-and-forget UDP and never raises: a metrics outage must not slow or fail a run. The
StatsD client follows Airflow's ``[metrics]`` section (host, port, prefix, allow and block lists,
overridable under ``[wfe]``), so ``wfe.*`` lands beside Airflow's own metrics. We use the ``statsd``
package directly because Airflow's ``Stats`` object is not initialised in every process and, from
Airflow 3.2.1 on, drops metric names it does not know (see docs/metrics.md).

With ``tags`` on, every line also carries DogStatsD tags (``name:1|c|#dag_id:etl,step:load``), which
statsd_exporter, Datadog's agent and the reference StatsD daemon all understand.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from airflow_wfe.core.metrics.filters import name_filter

__all__ = [
    "Emitter",
    "MetricsSettings",
    "NullEmitter",
    "RecordingEmitter",
    "StatsdEmitter",
    "build_emitter",
]

log = logging.getLogger(__name__)

#: Longest we let a process wait, once, for the StatsD host name to resolve. A literal IP address
#: never waits; a host that is slower than this counts as unresolvable for this process.
RESOLVE_TIMEOUT_SECONDS: Final = 0.5

Tags = Mapping[str, str] | None


class Emitter(Protocol):
    """Where the recorder sends metrics. Implementations never raise."""

    def incr(self, name: str, count: int = 1, *, tags: Tags = None) -> None: ...

    def gauge(self, name: str, value: float, *, tags: Tags = None) -> None: ...

    def timing(self, name: str, milliseconds: float, *, tags: Tags = None) -> None: ...


@dataclass(frozen=True)
class MetricsSettings:
    """Where metrics go and what shapes them: Airflow's ``[metrics]``, overridden by ``[wfe]``.

    Attributes:
        tags: add DogStatsD tags (``dag_id``, ``step``, ...) to every line.
        deployment_dags: DAG ids (or ``fnmatch`` patterns) whose runs are deployments, so their
            end emits the DORA gauges.
        dora_window_days: the window of those gauges.
        otel_on: send over OTLP/HTTP instead (Airflow's ``[metrics] otel_on``; StatsD wins when
            both are on, as in Airflow).
        otel_endpoint: the OTLP/HTTP metrics URL; empty: the ``OTEL_EXPORTER_OTLP_*`` variables.
        otel_prefix, otel_interval_ms, otel_service: name prefix, export interval, service name.
    """

    statsd_on: bool = False
    host: str = "localhost"
    port: int = 8125
    prefix: str = "airflow"
    ipv6: bool = False
    allow_list: str = ""
    block_list: str = ""
    tags: bool = False
    deployment_dags: tuple[str, ...] = ()
    dora_window_days: float = 30.0
    otel_on: bool = False
    otel_endpoint: str = ""
    otel_prefix: str = "airflow"
    otel_interval_ms: int = 60000
    otel_service: str = "airflow"


class NullEmitter:
    """Drops everything: StatsD is off, or its host cannot be resolved."""

    def __init__(self, settings: MetricsSettings | None = None) -> None:
        self.settings = settings or MetricsSettings()
        self.active = False

    def incr(self, name: str, count: int = 1, *, tags: Tags = None) -> None:
        return None

    def gauge(self, name: str, value: float, *, tags: Tags = None) -> None:
        return None

    def timing(self, name: str, milliseconds: float, *, tags: Tags = None) -> None:
        return None


class RecordingEmitter:
    """Keeps every metric in memory: for tests of code that emits (ours and users')."""

    def __init__(self, settings: MetricsSettings | None = None) -> None:
        self.settings = settings or MetricsSettings(statsd_on=True)
        self.active = True
        self.sent: list[tuple[str, str, float, dict[str, str]]] = []

    def incr(self, name: str, count: int = 1, *, tags: Tags = None) -> None:
        self.sent.append(("c", name, count, dict(tags or {})))

    def gauge(self, name: str, value: float, *, tags: Tags = None) -> None:
        self.sent.append(("g", name, value, dict(tags or {})))

    def timing(self, name: str, milliseconds: float, *, tags: Tags = None) -> None:
        self.sent.append(("ms", name, milliseconds, dict(tags or {})))

    def names(self, kind: str | None = None) -> list[str]:
        """The names sent, in order (of one kind: ``c``, ``g`` or ``ms``)."""
        return [name for k, name, _, _ in self.sent if kind is None or k == kind]


_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]")


def _tag_suffix(tags: Tags) -> str:
    if not tags:
        return ""
    parts = [f"{_TAG_UNSAFE.sub('_', k)}:{_TAG_UNSAFE.sub('_', str(v))}" for k, v in tags.items()]
    return "|#" + ",".join(parts)


def _resolve(host: str, port: int, ipv6: bool) -> None:
    """Resolve ``host`` within :data:`RESOLVE_TIMEOUT_SECONDS`, or raise ``OSError``.

    ``getaddrinfo`` has no timeout of its own, and a broken resolver can hold it for many seconds:
    it runs in a daemon thread we stop waiting for.
    """
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    outcome: dict[str, BaseException | None] = {}

    def lookup() -> None:
        try:
            family = socket.AF_INET6 if ipv6 else socket.AF_INET
            socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
            outcome["error"] = None
        except OSError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=lookup, name="wfe-statsd-resolve", daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT_SECONDS)
    if "error" not in outcome:
        raise OSError(f"resolving {host!r} took longer than {RESOLVE_TIMEOUT_SECONDS}s")
    if outcome["error"] is not None:
        raise outcome["error"]


class StatsdEmitter:
    """Sends to a StatsD daemon over UDP; swallows and logs (once) any failure to send."""

    def __init__(self, settings: MetricsSettings) -> None:
        import statsd

        _resolve(settings.host, settings.port, settings.ipv6)
        self.settings = settings
        self.active = True
        self._client: Any = statsd.StatsClient(
            host=settings.host,
            port=settings.port,
            prefix=settings.prefix or None,
            ipv6=settings.ipv6,
        )
        self._allowed = name_filter(settings)
        self._tags = settings.tags
        self._warned = False

    def _safely(self, send: Callable[[], None]) -> None:
        try:
            send()
        except Exception as exc:  # noqa: BLE001 - emission never raises, whatever went wrong
            if not self._warned:
                self._warned = True
                log.warning("wfe metrics: StatsD send failed (%s); later failures are silent", exc)

    def _tagged(self, name: str, payload: str, tags: Tags) -> None:
        # The statsd package has no tags: its one formatting hook is the payload after the colon.
        self._client._send_stat(name, payload + _tag_suffix(tags), 1)

    def incr(self, name: str, count: int = 1, *, tags: Tags = None) -> None:
        if not self._allowed(name):
            return
        if self._tags and tags:
            self._safely(lambda: self._tagged(name, f"{count}|c", tags))
        else:
            self._safely(lambda: self._client.incr(name, count))

    def gauge(self, name: str, value: float, *, tags: Tags = None) -> None:
        if not self._allowed(name):
            return
        if self._tags and tags:

            def send() -> None:
                if value < 0:
                    # "-5|g" would be read as a delta: set to 0 first, as the statsd client does.
                    self._tagged(name, "0|g", tags)
                self._tagged(name, f"{value}|g", tags)

            self._safely(send)
        else:
            self._safely(lambda: self._client.gauge(name, value))

    def timing(self, name: str, milliseconds: float, *, tags: Tags = None) -> None:
        if not self._allowed(name):
            return
        if self._tags and tags:
            self._safely(lambda: self._tagged(name, f"{milliseconds:0.6f}|ms", tags))
        else:
            self._safely(lambda: self._client.timing(name, milliseconds))


def build_emitter(settings: MetricsSettings) -> Emitter:
    """A StatsD emitter when ``statsd_on``, else an OpenTelemetry one when ``otel_on``; a null one
    when both are off or the emitter cannot be built (StatsD host unresolvable, SDK missing).

    At most one warning per process: the host cannot be resolved here, or the first send failed.
    """
    if not settings.statsd_on and settings.otel_on:
        try:
            from airflow_wfe.core.metrics.otel import OtelEmitter

            return OtelEmitter(settings)
        except Exception as exc:  # noqa: BLE001 - a metrics misconfiguration never fails a task
            log.warning("wfe metrics: cannot set up OpenTelemetry (%s); metrics are off", exc)
            return NullEmitter(settings)
    if not settings.statsd_on:
        return NullEmitter(settings)
    try:
        return StatsdEmitter(settings)
    except Exception as exc:  # noqa: BLE001 - a metrics misconfiguration never fails a task
        log.warning(
            "wfe metrics: cannot reach StatsD at %s:%s (%s); metrics are off for this process",
            settings.host,
            settings.port,
            exc,
        )
        return NullEmitter(settings)
