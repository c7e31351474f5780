"""The StatsD emitter: exact packets, Airflow's allow/block lists, and outages that cost nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from airflow_wfe.core.metrics import (
    MetricsSettings,
    NullEmitter,
    StatsdEmitter,
    build_emitter,
    names,
)


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


def test_dogstatsd_tags_when_on(receiver: socket.socket) -> None:
    emitter = build_emitter(_settings(receiver, tags=True))
    emitter.incr(names.step_state("RETRYING"), tags={"dag_id": "etl.v2", "step": "grp.load"})
    emitter.timing(names.step_duration("SUCCEEDED"), 12.5, tags={"dag_id": "etl"})
    emitter.gauge(names.business("roi", "etl"), -0.5, tags={"dag_id": "etl", "unit": "a,b:c"})
    emitter.incr(names.AUDIT_EVENTS, 3)  # no tags given: a plain line
    packets = [receiver.recv(1024).decode() for _ in range(5)]
    assert packets == [
        "airflow.wfe.step.state.retrying:1|c|#dag_id:etl.v2,step:grp.load",
        "airflow.wfe.step.duration.succeeded:12.500000|ms|#dag_id:etl",
        "airflow.wfe.business.roi.etl:0|g|#dag_id:etl,unit:a_b_c",  # a negative gauge is set,
        "airflow.wfe.business.roi.etl:-0.5|g|#dag_id:etl,unit:a_b_c",  # not decremented
        "airflow.wfe.audit.events:3|c",
    ]


def test_tags_are_dropped_when_off(receiver: socket.socket) -> None:
    emitter = build_emitter(_settings(receiver))
    emitter.incr(names.run_state("FAILED"), tags={"dag_id": "etl"})
    assert receiver.recv(1024).decode() == "airflow.wfe.run.state.failed:1|c"


def test_strange_dag_ids_never_corrupt_a_packet(receiver: socket.socket) -> None:
    emitter = build_emitter(_settings(receiver))
    emitter.timing(names.run_duration("COMPLETED", "dép|loy:1\nx"), 5)
    assert (
        receiver.recv(1024).decode() == "airflow.wfe.run.duration.completed.d_p_loy_1_x:5.000000|ms"
    )


def test_names_have_their_documented_shapes() -> None:
    assert names.run_state("COMPLETED") == "wfe.run.state.completed"
    assert names.step_state("RETRYING") == names.STEP_RETRIES
    assert (
        names.gate_decision("Budget", "NEEDS_APPROVAL") == "wfe.gate.decision.budget.needs_approval"
    )
    assert names.approval_wait("approved") == "wfe.approval.wait.approved"
    assert names.cost_spent("d") == "wfe.cost.spent.d"
    assert names.cost_budget("d") == "wfe.cost.budget.d"
    assert names.dora(names.DORA_MTTR, "deploy.api") == "wfe.dora.mttr.deploy.api"
    assert names.AUDIT_EVENTS == "wfe.audit.events"


def test_a_slow_resolver_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from airflow_wfe.core.metrics import emitter as emitter_module

    def hanging(*args: object, **kwargs: object) -> object:
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(emitter_module.socket, "getaddrinfo", hanging)
    started = time.monotonic()
    emitter = build_emitter(MetricsSettings(statsd_on=True, host="statsd.example"))
    assert time.monotonic() - started < emitter_module.RESOLVE_TIMEOUT_SECONDS + 0.5
    assert isinstance(emitter, NullEmitter)


def test_an_outage_logs_once_and_costs_microseconds(caplog: pytest.LogCaptureFixture) -> None:
    import time

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with caplog.at_level("WARNING", logger="airflow_wfe.core.metrics.emitter"):
        unresolvable = build_emitter(MetricsSettings(statsd_on=True, host="statsd.invalid"))
        closed = build_emitter(MetricsSettings(statsd_on=True, host="127.0.0.1", port=port))
        started = time.perf_counter()
        for _ in range(1000):
            unresolvable.incr(names.LISTENER_ERRORS, tags={"dag_id": "d"})
            closed.timing(names.step_duration("SUCCEEDED"), 1.0, tags={"dag_id": "d"})
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # 2,000 sends: well under a millisecond each
    assert len(caplog.records) <= 1
