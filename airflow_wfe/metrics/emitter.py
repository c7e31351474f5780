"""Emitting metrics: a protocol, a StatsD implementation and a null one.

Emission is fire-and-forget UDP and never raises: a metrics outage must not slow or fail a run. The
StatsD client follows Airflow's ``[metrics]`` section (host, port, prefix, allow and block lists), so
``wfe.*`` lands beside Airflow's own metrics. We use the ``statsd`` package directly because
Airflow's ``Stats`` object is not guaranteed to be initialised in every process (see docs/airflow3).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Emitter", "MetricsSettings", "NullEmitter", "StatsdEmitter", "build_emitter"]

log = logging.getLogger(__name__)


class Emitter(Protocol):
    """Where the recorder sends metrics."""

    def incr(self, name: str, count: int = 1) -> None: ...

    def gauge(self, name: str, value: float) -> None: ...

    def timing(self, name: str, milliseconds: float) -> None: ...


class NullEmitter:
    """Drops everything: StatsD is off, or its host cannot be resolved."""

    def incr(self, name: str, count: int = 1) -> None:
        return None

    def gauge(self, name: str, value: float) -> None:
        return None

    def timing(self, name: str, milliseconds: float) -> None:
        return None


@dataclass(frozen=True)
class MetricsSettings:
    """The parts of Airflow's ``[metrics]`` section that shape our client."""

    statsd_on: bool = False
    host: str = "localhost"
    port: int = 8125
    prefix: str = "airflow"
    ipv6: bool = False
    allow_list: str = ""
    block_list: str = ""


def _name_filter(settings: MetricsSettings) -> Callable[[str], bool]:
    # Airflow matches these regexes against the un-prefixed name; the allow list wins.
    def compile_list(raw: str) -> list[re.Pattern[str]]:
        return [re.compile(part.strip()) for part in raw.split(",") if part.strip()]

    allow = compile_list(settings.allow_list)
    block = compile_list(settings.block_list)
    if allow:
        return lambda name: any(p.match(name) for p in allow)
    if block:
        return lambda name: not any(p.match(name) for p in block)
    return lambda name: True


class StatsdEmitter:
    """Sends to a StatsD daemon over UDP; swallows and logs (once) any socket error."""

    def __init__(self, settings: MetricsSettings) -> None:
        import statsd

        self._client = statsd.StatsClient(
            host=settings.host,
            port=settings.port,
            prefix=settings.prefix or None,
            ipv6=settings.ipv6,
        )
        self._allowed = _name_filter(settings)
        self._warned = False

    def _safely(self, send: Callable[[], None]) -> None:
        try:
            send()
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("wfe metrics: StatsD send failed (%s); later failures are silent", exc)

    def incr(self, name: str, count: int = 1) -> None:
        if self._allowed(name):
            self._safely(lambda: self._client.incr(name, count))

    def gauge(self, name: str, value: float) -> None:
        if self._allowed(name):
            self._safely(lambda: self._client.gauge(name, value))

    def timing(self, name: str, milliseconds: float) -> None:
        if self._allowed(name):
            self._safely(lambda: self._client.timing(name, milliseconds))


def build_emitter(settings: MetricsSettings) -> Emitter:
    """A StatsD emitter when ``statsd_on``; a null one when off or when the host does not resolve."""
    if not settings.statsd_on:
        return NullEmitter()
    try:
        return StatsdEmitter(settings)
    except (OSError, socket.gaierror) as exc:
        log.warning(
            "wfe metrics: cannot reach StatsD at %s:%s (%s); metrics are off for this process",
            settings.host,
            settings.port,
            exc,
        )
        return NullEmitter()
