"""Governed runs through Airflow produce the documented metrics in the reference StatsD daemon.

The daemon is the npm package ``statsd`` (Etsy's reference server) run by node on loopback, with a
flush interval of an hour so nothing is reset while we look; the test reads counters, timers and
gauges back through its management interface, as an operator would. ``.ci/run`` installs it into
``.ci/node``; elsewhere the test skips saying why, and ``WFE_REQUIRE_STATSD=1`` (set by CI) turns
that skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_ROOT = Path(__file__).resolve().parents[2]
_STATS_JS = Path(
    os.environ.get("WFE_STATSD_JS", _ROOT / ".ci" / "node" / "node_modules" / "statsd" / "stats.js")
)


def _missing_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the reference StatsD daemon runs on node)"
    if not _STATS_JS.is_file():
        return (
            f"the StatsD daemon is not installed at {_STATS_JS} "
            "(npm install --prefix .ci/node statsd@0.9.0, as .ci/run does)"
        )
    return None


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StatsdDaemon:
    """A running reference StatsD server and a reader for its management interface."""

    udp_port: int
    mgmt_port: int

    def command(self, name: str, until: bytes = b"END\n\n") -> str:
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=5) as conn:
            conn.sendall(f"{name}\n".encode())
            data = b""
            while not data.endswith(until):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def numbers(self, name: str) -> dict[str, float]:
        """``counters`` or ``gauges`` as ``{key: value}`` (node prints a JS object literal)."""
        text = self.command(name)
        return {
            key: float(value)
            for key, value in re.findall(r"'?([\w.;=\-]+)'?: (-?[\d.e+\-]+)", text)
        }

    def timers(self) -> dict[str, list[float]]:
        text = self.command("timers")
        return {
            key: [float(v) for v in values.replace("\n", " ").split(",") if v.strip()]
            for key, values in re.findall(r"'?([\w.;=\-]+)'?: \[([^\]]*)\]", text)
        }

    def wait_for(self, check: Any, timeout: float = 5.0) -> None:
        """UDP is asynchronous: give the daemon a moment to take in the last packets."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


@pytest.fixture
def statsd_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdDaemon]:
    reason = _missing_reason()
    if reason:
        if os.environ.get("WFE_REQUIRE_STATSD") == "1":
            pytest.fail(f"WFE_REQUIRE_STATSD=1 but {reason}")
        pytest.skip(reason)
    daemon = StatsdDaemon(_free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM))
    config = tmp_path / "statsd.js"
    config.write_text(
        f"{{ address: '127.0.0.1', port: {daemon.udp_port}, mgmt_address: '127.0.0.1',"
        f" mgmt_port: {daemon.mgmt_port}, flushInterval: 3600000, backends: [], title: false }}\n"
    )
    log = (tmp_path / "statsd.log").open("w")
    process = subprocess.Popen(
        ["node", str(_STATS_JS), str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if "health: up" in daemon.command("health", until=b"\n"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"StatsD daemon did not start: {(tmp_path / 'statsd.log').read_text()}")
            time.sleep(0.1)
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(daemon.udp_port))
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
        monkeypatch.setenv("AIRFLOW__WFE__DEPLOYMENT_DAGS", "wfe_m_*")
        reset_runtime()
        yield daemon
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        monkeypatch.undo()
        reset_runtime()


def test_governed_runs_reach_the_statsd_daemon(dagbag: Any, statsd_daemon: StatsdDaemon) -> None:
    deploy = dagbag.get_dag("wfe_m_deploy").test()
    assert deploy.state == "success"
    rollback = dagbag.get_dag("wfe_m_rollback").test()
    assert rollback.state == "failed"

    expected_counters = [
        "airflow.wfe.run.state.created",
        "airflow.wfe.run.state.validated",
        "airflow.wfe.run.state.running",
        "airflow.wfe.run.state.completed",
        "airflow.wfe.run.state.failed",
        "airflow.wfe.run.state.compensating",
        "airflow.wfe.run.state.compensated",
        "airflow.wfe.step.state.pending",
        "airflow.wfe.step.state.running",
        "airflow.wfe.step.state.retrying",
        "airflow.wfe.step.state.succeeded",
        "airflow.wfe.step.state.failed",
        "airflow.wfe.compensation.run.started",
        "airflow.wfe.compensation.run.compensated",
        "airflow.wfe.compensation.step.started",
        "airflow.wfe.compensation.step.compensated",
    ]
    statsd_daemon.wait_for(lambda: set(expected_counters) <= set(statsd_daemon.numbers("counters")))
    counters = statsd_daemon.numbers("counters")
    for name in expected_counters:
        assert counters.get(name, 0) >= 1, (name, counters)
    assert counters["airflow.wfe.run.state.completed"] == 1
    assert counters["airflow.wfe.step.state.retrying"] == 1  # rollout's first try
    assert counters["airflow.wfe.run.state.created"] == 2

    timers = statsd_daemon.timers()
    for name in (
        "airflow.wfe.run.duration.completed.wfe_m_deploy",
        "airflow.wfe.run.duration.failed.wfe_m_rollback",
        "airflow.wfe.run.duration.compensated.wfe_m_rollback",
        "airflow.wfe.step.duration.succeeded",
        "airflow.wfe.step.duration.retrying",
        "airflow.wfe.step.duration.failed",
        "airflow.wfe.compensation.duration.compensated",
    ):
        assert timers.get(name), (name, timers)
        assert all(value >= 0 for value in timers[name])
    assert len(timers["airflow.wfe.run.duration.completed.wfe_m_deploy"]) == 1

    gauges = statsd_daemon.numbers("gauges")
    assert gauges["airflow.wfe.business.roi.wfe_m_deploy"] == 0.25
    assert gauges["airflow.wfe.business.cost.wfe_m_deploy"] == 1.5
    # DORA gauges at the end of each deployment run: this store holds this session's runs too,
    # so the figures are checked for shape here and for exact values in tests/unit/engine and tests/unit/core.
    assert gauges["airflow.wfe.dora.deployment_frequency.wfe_m_deploy"] > 0
    assert gauges["airflow.wfe.dora.lead_time.wfe_m_deploy"] >= 0
    assert gauges["airflow.wfe.dora.change_failure_rate.wfe_m_rollback"] == 1
    assert "airflow.wfe.dora.deployment_frequency.wfe_m_rollback" in gauges


def test_tags_reach_the_daemon(
    dagbag: Any, statsd_daemon: StatsdDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__STATSD_TAGS", "True")
    reset_runtime()
    assert dagbag.get_dag("wfe_m_deploy").test().state == "success"
    key = "airflow.wfe.step.state.retrying;dag_id=wfe_m_deploy;step=rollout"
    statsd_daemon.wait_for(lambda: key in statsd_daemon.numbers("counters"))
    counters = statsd_daemon.numbers("counters")
    assert counters[key] == 1, counters
    assert counters["airflow.wfe.run.state.completed;dag_id=wfe_m_deploy"] == 1
    gauges = statsd_daemon.numbers("gauges")
    assert (
        gauges["airflow.wfe.business.roi.wfe_m_deploy;dag_id=wfe_m_deploy;step=verify;unit=ratio"]
        == 0.25
    )
