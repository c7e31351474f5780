"""The StatsD emitter: exact packets, Airflow's allow/block lists, and outages that cost nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from airflow_wfe.metrics import MetricsSettings, NullEmitter, StatsdEmitter, build_emitter, names


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1)
    yield sock
    sock.close()


def _settings(sock: socket.socket, **overrides: object) -> MetricsSettings:
    values: dict[str, object] = {
        "statsd_on": True,
        "host": "127.0.0.1",
        "port": sock.getsockname()[1],
        "prefix": "airflow",
    }
    values.update(overrides)
    return MetricsSettings(**values)  # type: ignore[arg-type]


def test_packet_formats(receiver: socket.socket) -> None:
    emitter = build_emitter(_settings(receiver))
    assert isinstance(emitter, StatsdEmitter)
    emitter.incr(names.run_state("COMPLETED"))
    emitter.gauge("wfe.cost.spent", 12.5)
    emitter.timing(names.RUN_DURATION, 1500)
    packets = [receiver.recv(1024).decode() for _ in range(3)]
    assert packets == [
        "airflow.wfe.run.state.completed:1|c",
        "airflow.wfe.cost.spent:12.5|g",
        "airflow.wfe.run.duration:1500.000000|ms",  # the statsd client always sends 6 decimals
    ]


def test_allow_list_wins_like_airflow(receiver: socket.socket) -> None:
    emitter = build_emitter(_settings(receiver, allow_list=r"^wfe\.run", block_list=r"^wfe"))
    emitter.incr(names.step_state("RUNNING"))
    emitter.incr(names.run_state("RUNNING"))
    assert receiver.recv(1024).decode() == "airflow.wfe.run.state.running:1|c"
    receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        receiver.recv(1024)


def test_block_list(receiver: socket.socket) -> None:
    emitter = build_emitter(_settings(receiver, block_list=r"^wfe\.step"))
    emitter.incr(names.step_state("RUNNING"))
    emitter.incr(names.LISTENER_ERRORS)
    assert receiver.recv(1024).decode() == "airflow.wfe.listener.errors:1|c"


def test_statsd_off_or_unresolvable_host_gives_a_null_emitter() -> None:
    assert isinstance(build_emitter(MetricsSettings(statsd_on=False)), NullEmitter)
    emitter = build_emitter(MetricsSettings(statsd_on=True, host="statsd.invalid"))
    assert isinstance(emitter, NullEmitter)
    emitter.incr("wfe.anything")  # and it never raises


def test_sends_to_a_closed_port_never_raise() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    emitter = build_emitter(MetricsSettings(statsd_on=True, host="127.0.0.1", port=port))
    for _ in range(100):
        emitter.incr(names.LISTENER_ERRORS)
