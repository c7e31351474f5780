"""Metrics of a governed run, captured from the wire by a real UDP receiver."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_wfe.engine.harness import reset_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def statsd_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(receiver.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    reset_runtime()
    yield receiver
    receiver.close()
    monkeypatch.undo()
    reset_runtime()


def _drain(receiver: socket.socket) -> list[str]:
    packets: list[str] = []
    while True:
        try:
            data = receiver.recv(65535)
        except TimeoutError:
            return packets
        packets.extend(data.decode().splitlines())


def test_a_failing_run_emits_state_counters(dagbag: Any, statsd_receiver: socket.socket) -> None:
    dag_run = dagbag.get_dag("wfe_example_retry_fail").test()
    assert dag_run.state == "failed"
    ours = [p for p in _drain(statsd_receiver) if p.startswith("airflow.wfe.")]
    for expected in (
        "airflow.wfe.run.state.created:1|c",
        "airflow.wfe.run.state.validated:1|c",
        "airflow.wfe.run.state.running:1|c",
        "airflow.wfe.run.state.failed:1|c",
        "airflow.wfe.step.state.retrying:1|c",
        "airflow.wfe.step.state.upstream_failed:1|c",
    ):
        assert expected in ours, ours
    assert ours.count("airflow.wfe.step.state.running:1|c") == 3  # prepare, and flaky_publish twice


def test_facts_a_missing_store_cannot_take_are_spooled_and_counted(
    dagbag: Any, statsd_receiver: socket.socket, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{tmp_path}/missing/wfe.db")
    reset_runtime()
    dag_run = dagbag.get_dag("wfe_t_skip_self").test()
    assert dag_run.state == "success"
    # With fail_closed off, what the store cannot take goes to the spool (docs/reliability.md),
    # counted as it is written; nothing of it fails the run.
    spooled = [p for p in _drain(statsd_receiver) if p.startswith("airflow.wfe.spool.written:")]
    assert len(spooled) >= 2


def test_nothing_listening_never_fails_the_run(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more: sends get ECONNREFUSED at best
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(port))
    reset_runtime()
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "success"
    from airflow_wfe.engine.harness import get_runtime_store

    assert get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id).state == "COMPLETED"


def test_gates_and_costs_emit_their_metrics(dagbag: Any, statsd_receiver: socket.socket) -> None:
    dag_run = dagbag.get_dag("wfe_t_gate_budget").test()
    assert dag_run.state == "failed"
    ours = [p for p in _drain(statsd_receiver) if p.startswith("airflow.wfe.")]
    # segment() makes names safe for StatsD and Prometheus: "run-budget" becomes "run_budget".
    assert "airflow.wfe.gate.decision.run_budget.deny:1|c" in ours, ours
    # The gauge is what the DAG spent this month (docs/metrics.md): this run's 8.0 plus whatever
    # earlier runs of it in the session's store spent (test_policy_gates runs it too).
    from airflow_wfe.engine.harness import get_runtime_store

    spent = get_runtime_store().spent(dag_run.dag_id, dag_run.run_id)
    assert spent["run"] == 8.0, spent
    assert f"airflow.wfe.cost.spent.wfe_t_gate_budget:{spent['dag_month']}|g" in ours, ours
    assert any(p.startswith("airflow.wfe.audit.events:") for p in ours), ours


def test_a_dag_tagged_deployment_emits_dora_gauges_at_run_end(
    dagbag: Any, statsd_receiver: socket.socket
) -> None:
    # No [wfe] deployment_dags: the `deployment` tag alone, seen by the listener at run end.
    dag_run = dagbag.get_dag("wfe_m_deploy").test()
    assert dag_run.state == "success"
    ours = [p for p in _drain(statsd_receiver) if p.startswith("airflow.wfe.dora.")]
    names = {p.split(":")[0] for p in ours}
    assert "airflow.wfe.dora.deployment_frequency.wfe_m_deploy" in names, ours
    assert "airflow.wfe.dora.change_failure_rate.wfe_m_deploy" in names, ours
