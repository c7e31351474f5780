"""Canary analysis gates through real Airflow (``dag.test()``): a canary clearly worse than its
baseline rolls back and the run's saga undoes the deployment; a healthy one promotes; a noisy but
equal one is not rolled back; too few samples hold (the sensor reschedules) and then decide; samples
read from a local server speaking Prometheus's HTTP API."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]

pytest.importorskip("scipy", reason="the canary's test needs SciPy (airflow-wfe[quality])")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("WFE_TEST_LEDGER", str(path))
    reset_runtime()
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _decision(dag_id: str, run_id: str) -> Any:
    decisions = [d for d in get_runtime_store().decisions(dag_id, run_id) if d.kind == "canary"]
    assert len(decisions) == 1, decisions
    return decisions[0]


def test_a_canary_worse_than_its_baseline_rolls_back_and_is_undone(
    dagbag: Any, ledger: Path
) -> None:
    dag_run = dagbag.get_dag("wfe_t_canary_rollback").test()
    assert dag_run.state == "failed"
    assert _lines(ledger) == ["deploy", "undeploy release-2"]
    decision = _decision("wfe_t_canary_rollback", dag_run.run_id)
    assert decision.outcome == "rollback"
    (figures,) = decision.details["metrics"]
    assert figures["test"] == "mann-whitney-u (one-sided)"
    assert figures["p_value"] < 0.001
    assert figures["canary"]["n"] == 200
    assert figures["tolerance"] == 0.1
    assert "worse than the baseline by" in decision.reasons[0]["message"]
    run = get_runtime_store().get_run("wfe_t_canary_rollback", dag_run.run_id)
    assert run.state == "COMPENSATED"


@pytest.mark.parametrize("dag_id", ["wfe_t_canary_promote", "wfe_t_canary_noisy"])
def test_a_healthy_or_noisy_but_equal_canary_promotes(
    dagbag: Any, ledger: Path, dag_id: str
) -> None:
    dag_run = dagbag.get_dag(dag_id).test()
    assert dag_run.state == "success"
    assert _lines(ledger) == ["deploy", "promote"]
    assert _decision(dag_id, dag_run.run_id).outcome == "promote"


def test_too_few_samples_hold_then_decide(dagbag: Any, ledger: Path) -> None:
    dag_run = dagbag.get_dag("wfe_t_canary_hold").test()
    assert dag_run.state == "failed"
    assert int(Path(f"{ledger}.checks").read_text()) == 2  # held once, decided on the second look
    decision = _decision("wfe_t_canary_hold", dag_run.run_id)
    assert decision.outcome == "rollback"
    assert decision.details["metrics"][0]["canary"]["n"] == 60


class _Prometheus(BaseHTTPRequestHandler):
    """``/api/v1/query_range`` as Prometheus answers it: a matrix of [time, "value"] pairs."""

    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query).get("query", [""])[0]
        if url.path != "/api/v1/query_range":
            self.send_error(404)
            return
        type(self).queries.append(query)
        rng = random.Random(len(query))
        mean = 0.12 if 'release="canary"' in query else 0.02
        values = [
            [1_700_000_000 + 15 * i, f"{max(0.0, rng.gauss(mean, 0.01)):.5f}"] for i in range(40)
        ]
        body = {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
        }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def prometheus(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Prometheus]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_WFE_T_PROM",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port}),
    )
    _Prometheus.queries = []
    try:
        yield _Prometheus
    finally:
        server.shutdown()


def test_samples_from_prometheus(dagbag: Any, ledger: Path, prometheus: type[_Prometheus]) -> None:
    dag_run = dagbag.get_dag("wfe_t_canary_prometheus").test()
    assert dag_run.state == "failed"
    assert prometheus.queries == [
        'rate(http_errors_total{release="canary"}[1m])',
        'rate(http_errors_total{release="stable"}[1m])',
    ]
    decision = _decision("wfe_t_canary_prometheus", dag_run.run_id)
    assert decision.outcome == "rollback"
    assert decision.details["metrics"][0]["baseline"]["n"] == 40
    assert _lines(ledger) == ["deploy", "undeploy release-2"]


def test_a_yaml_canary_key_rolls_back_and_the_saga_undoes_the_step(
    dagbag: Any, ledger: Path
) -> None:
    dag = dagbag.get_dag("wfe_t_yaml_canary")
    assert dag.get_task("promote").upstream_task_ids == {"canary__deploy"}
    assert dag.get_task("canary__deploy").poke_interval == 1.0
    dag_run = dag.test()
    assert dag_run.state == "failed"
    decision = _decision("wfe_t_yaml_canary", dag_run.run_id)
    assert decision.outcome == "rollback"
    assert decision.step_id == "canary__deploy"
    run = get_runtime_store().get_run("wfe_t_yaml_canary", dag_run.run_id)
    assert run.state == "COMPENSATED"


def test_the_release_example_passes_all_three_gates(dagbag: Any, ledger: Path) -> None:
    import os

    dag_run = dagbag.get_dag("wfe_example_release_gates").test()
    assert dag_run.state == "success"
    store = get_runtime_store()
    kinds = [
        (d.kind, d.outcome) for d in store.decisions("wfe_example_release_gates", dag_run.run_id)
    ]
    assert kinds == [
        ("quality", "allow"),
        ("canary", "promote"),
        ("wave", "continue"),
        ("wave", "continue"),
        ("wave", "continue"),
    ]
    hosts = Path(os.environ["AIRFLOW_HOME"]) / "wfe-demo-release" / "hosts"
    assert sorted(p.name for p in hosts.iterdir()) == [f"web-{i}" for i in range(1, 6)]
    assert {(h / "current").read_text() for h in hosts.iterdir()} == {"2026.12.1"}


def test_a_canary_gate_decorator_gets_its_arguments_from_upstream(
    dagbag: Any, ledger: Path
) -> None:
    dag_run = dagbag.get_dag("wfe_t_canary_decorated").test()
    assert dag_run.state == "success"
    assert _lines(ledger) == ["deploy", "judging release-3", "promote"]
    assert _decision("wfe_t_canary_decorated", dag_run.run_id).outcome == "promote"
