"""The distributed setup: CeleryExecutor, Redis, PostgreSQL, two workers, one of them SIGKILLed.

Production deployments that outgrow one machine run Airflow's CeleryExecutor: the scheduler puts
task instances on a broker, workers on other machines take them. This test runs that setup as
separate processes on 127.0.0.1 (the harness ``cluster.py``): api-server, dag-processor, scheduler
and two ``airflow celery worker`` processes; Redis (a database number of this test's own, flushed)
is the broker, PostgreSQL holds Airflow's metadata database, Celery's results and the wfe store
(fresh databases), with an Ed25519 audit signing key and an anchor folder, as docs/audit.md says a
server store needs. The DAGs (``tests/scenarios/celery``) run at the same time: a saga that
succeeds, one that fails and compensates, a budget gate that denies and compensates, and a run
whose long step's worker is SIGKILLed (with every process below it) mid-step; the scheduler finds
the task without a heartbeat and the other worker runs its retry. Whatever else the dead worker had
taken from the broker stays queued until the scheduler requeues it (a short
``[scheduler] task_queued_timeout`` here).

Checked: Airflow's verdicts; each governed history (no transition recorded twice, the killed try's
end and the retry in the step's history); each compensation applied once; ``wfe audit verify``
(signatures, chain, replay of the state tables) OK against the anchors. Every component sends its
metrics over OpenTelemetry (Airflow's ``[metrics] otel_on``) to an OTLP receiver in the test: the
wfe counters from the scheduler and the workers' task processes add up to the runs' transitions.

Skips naming what is missing (Redis, PostgreSQL, the Celery provider); under
``WFE_REQUIRE_POSTGRES=1`` (CI) those skips are failures.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from airflow_env import scenario
from celery_backends import fresh_databases, keygen
from cluster import CeleryBackends, Cluster, render_records
from otlp_receiver import Receiver, running_receiver

#: The Redis database number this test owns (flushed before and after; nothing else uses it).
REDIS_DB = 5
REDIS_URL = os.environ.get("WFE_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")
PG_URL = os.environ.get("WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

#: Budget for the components to come up and every run (the killed one's retry included) to end.
RUN_DEADLINE_S = 300.0
#: How long the scheduler waits for a running task's heartbeat before it fails the try (Airflow's
#: default is 300 s; short here so the killed try is noticed within the test).
HEARTBEAT_TIMEOUT_S = 20
#: How long a task instance may stay queued before the scheduler requeues it (see the fixture).
QUEUED_TIMEOUT_S = 40

SAGA_OK, SAGA_FAIL = "wfe_c_saga_ok", "wfe_c_saga_fail"
GATE, KILLED = "wfe_c_gate_budget", "wfe_c_worker_killed"
DAGS = (SAGA_OK, SAGA_FAIL, GATE, KILLED)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.timeout(600),
]


@pytest.fixture
def backends() -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases (Airflow's, the wfe store's) and this test's Redis db, emptied."""
    with fresh_databases("wfe_celery", REDIS_URL, PG_URL) as urls:
        yield urls


@pytest.fixture
def otlp() -> Iterator[Receiver]:
    """Where every component sends its metrics (Airflow's ``[metrics] otel_on``)."""
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def celery_cluster(tmp_path: Path, backends: dict[str, str], otlp: Receiver) -> Iterator[Cluster]:
    """api-server, dag-processor, scheduler and two Celery workers on Redis and PostgreSQL."""
    key = keygen(tmp_path / "keys")
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    airflow_db = backends["airflow"]
    cluster = Cluster(
        tmp_path,
        dags=scenario("celery"),
        deadline_s=RUN_DEADLINE_S,
        ledger=True,
        database_url=airflow_db,
        celery=CeleryBackends(
            broker_url=REDIS_URL,
            result_backend=f"db+{airflow_db}",
            workers=2,
            concurrency=2,
        ),
        extra_env={
            "AIRFLOW__WFE__STORE_CONN": backends["store"],
            "AIRFLOW__WFE__AUDIT_SIGNING_KEY": f"ed25519:{key}",
            "AIRFLOW__WFE__AUDIT_ANCHOR_DIR": str(anchors),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            # Tasks the killed worker had taken from the broker but not started stay queued
            # (Celery redelivers them only after the broker's visibility timeout, 6 h): the
            # scheduler requeues what is queued longer than this (Airflow's default: 600 s).
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
            # Metrics over OpenTelemetry, from every component and task process.
            "AIRFLOW__METRICS__OTEL_ON": "True",
            "AIRFLOW__METRICS__OTEL_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__OTEL_PORT": str(otlp.server_address[1]),
            "AIRFLOW__METRICS__OTEL_INTERVAL_MILLISECONDS": "1000",
        },
    )
    try:
        # A server store is migrated on purpose, before anything writes to it.
        upgraded = cluster.wfe("db", "upgrade", timeout=120)
        if upgraded.returncode != 0:
            cluster.fail(f"wfe db upgrade exited with {upgraded.returncode}")
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _started(cluster: Cluster) -> dict[int, dict[str, Any]]:
    """``long_step``'s tries that have started, from the ledger: {try: {"pid", "ancestors"}}."""
    found = {}
    for line in cluster.ledger_lines():
        if line.startswith("started "):
            fields = dict(pair.split("=", 1) for pair in line.split()[1:])
            found[int(fields["try"])] = {
                "pid": int(fields["pid"]),
                "ancestors": [int(pid) for pid in fields["ancestors"].split(",") if pid],
            }
    return found


def _duplicates(record: dict[str, Any]) -> list[str]:
    """Transitions recorded more than once (same move, same try) in the run or any step."""
    found = []
    histories = [("run", record["transitions"])] + [
        (f"{s['step_id']}[{s['map_index']}]", s["transitions"]) for s in record["steps"]
    ]
    for name, transitions in histories:
        counts = Counter((t["from_state"], t["to_state"], t["try_number"]) for t in transitions)
        found += [f"{name}: {move} x{n}" for move, n in counts.items() if n > 1]
    return found


def _steps(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in record["steps"] if s["map_index"] == -1}


def _run_states(record: dict[str, Any]) -> list[str]:
    return [t["to_state"] for t in record["transitions"]]


def _check(
    cluster: Cluster,
    airflow: dict[str, dict[str, Any]],
    records: dict[str, dict[str, Any]],
    victim: str,
) -> None:
    assert cluster.listener_complaints() == []
    for worker in cluster.celery.worker_names() if cluster.celery else []:
        # airflow_wfe.adapters.celery_config: loaded once per worker, before its pool forked.
        assert "wfe listener: warmed up" in (cluster.logs / f"{worker}.log").read_text(), worker
    assert {dag: run["state"] for dag, run in airflow.items()} == {
        SAGA_OK: "success",
        SAGA_FAIL: "failed",
        GATE: "failed",
        KILLED: "success",
    }
    for dag_id, record in records.items():
        assert _duplicates(record) == [], f"{dag_id}: a transition was recorded twice"

    ok = records[SAGA_OK]
    assert ok["state"] == "COMPLETED"
    assert {k: s["state"] for k, s in _steps(ok).items() if not k.startswith("compensate__")} == {
        "charge": "SUCCEEDED",
        "ship": "SUCCEEDED",
    }

    failed = records[SAGA_FAIL]
    assert _run_states(failed)[-3:] == ["FAILED", "COMPENSATING", "COMPENSATED"]
    assert _steps(failed)["charge"]["state"] == "COMPENSATED"
    assert _steps(failed)["ship"]["state"] == "FAILED"

    gate = records[GATE]
    assert _run_states(gate)[-3:] == ["REJECTED", "COMPENSATING", "COMPENSATED"]
    rejected = next(t for t in gate["transitions"] if t["to_state"] == "REJECTED")
    assert rejected["actor"] == "gate:budget_gate"
    assert _steps(gate)["book"]["state"] == "COMPENSATED"

    # Each effect once: the failed saga's refund, the gate's unbook; the denied step never ran;
    # the killed step's retry finished, the run went on.
    lines = cluster.ledger_lines()
    assert [line.split()[0] for line in lines if line.startswith("refund ")] == ["refund"]
    assert lines.count("unbook b1") == 1
    assert "expensive ran" not in lines
    assert "finished batch-7 try=2" in lines
    assert "published batch-7" in lines
    assert f"{SAGA_OK} shipped" in lines

    killed = records[KILLED]
    assert killed["state"] == "COMPLETED"
    step = _steps(killed)["long_step"]
    assert (step["state"], step["try_number"]) == ("SUCCEEDED", 2)
    moves = [(t["to_state"], t["try_number"]) for t in step["transitions"]]
    # Try 1 ran, its worker died, the scheduler's heartbeat check ended the try (up for retry),
    # and try 2 ran to success: the history says each, once.
    assert moves == [
        ("PENDING", 1),
        ("RUNNING", 1),
        ("RETRYING", 1),
        ("RUNNING", 2),
        ("SUCCEEDED", 2),
    ]
    # The killed try's end carries Airflow's word for it (the executor's failed state against a
    # running task instance, after the missing heartbeat).
    assert "finished with state failed" in step["transitions"][2]["reason"]
    # Try 2 ran below the surviving worker.
    survivor = next(n for n in cluster.processes if n.startswith("celery-") and n != victim)
    assert cluster.processes[survivor].pid in _started(cluster)[2]["ancestors"], survivor


#: wfe counters the runs add up to, over OTLP from the scheduler and the workers' task processes.
EXPECTED_COUNTS = {
    "airflow.wfe.run.state.running": 4,
    "airflow.wfe.run.state.completed": 2,
    "airflow.wfe.run.state.rejected": 1,
    "airflow.wfe.run.state.compensated": 2,
    "airflow.wfe.step.state.compensated": 2,
}


def _counts(otlp: Receiver) -> dict[str, float]:
    totals = otlp.totals("airflow.wfe.")
    return {name: totals.get(name, 0) for name in EXPECTED_COUNTS}


def test_celery_workers_run_governed_dags_and_survive_a_killed_worker(
    celery_cluster: Cluster, otlp: Receiver
) -> None:
    cluster = celery_cluster
    cluster.login()
    runs = {dag_id: cluster.trigger(dag_id) for dag_id in DAGS}

    # Kill the worker running try 1 of the long step, while it runs.
    pid = cluster.wait_until("try 1 of long_step to start", lambda: _started(cluster).get(1))["pid"]
    victim = cluster.component_of(pid) or "(none)"
    if not victim.startswith("celery-worker-"):
        cluster.fail(f"long_step's task process {pid} runs under {victim}, not a Celery worker")
    cluster.kill(victim)
    cluster.add_diagnostics(lambda: f"--- killed: {victim} (ran long_step try 1, pid {pid})")

    airflow = cluster.wait_runs_finished(runs, "every DAG run to finish")
    cluster.mark("every run finished")
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        shown = {dag: pool.submit(cluster.show_run, dag, run) for dag, run in runs.items()}
    records = {dag: future.result() for dag, future in shown.items()}
    cluster.add_diagnostics(lambda: "--- wfe records:\n" + render_records(*records.values()))

    # The metrics: every process exports each second and at its exit (task processes included).
    cluster.add_diagnostics(lambda: f"--- wfe counters over OTLP: {otlp.totals('airflow.wfe.')}")
    cluster.set_deadline(30.0)
    cluster.wait_until("the wfe counters over OTLP", lambda: _counts(otlp) == EXPECTED_COUNTS)

    verified = cluster.wfe("audit", "verify", "--json", timeout=120)
    anchored = cluster.wfe("audit", "anchor", "--json")

    def check() -> None:
        _check(cluster, airflow, records, victim)
        assert anchored.returncode == 0, anchored.stderr
        reverify = cluster.wfe(
            "audit", "verify", "--anchors", cluster.env["AIRFLOW__WFE__AUDIT_ANCHOR_DIR"]
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)
        assert reverify.returncode == 0, reverify.stdout + reverify.stderr

    cluster.verify(check)
    print(render_records(*records.values()))
