"""The warm-up's rehearsal: a process that forks task processes records a task's start and end in a
transaction it rolls back, so the forks inherit the write path's compiled statements.

Each probe is a fresh interpreter doing what a Celery worker does before its pool forks
(:func:`~airflow_wfe.adapters.listeners.process.prepare_worker`) on a real store (SQLite file, and
PostgreSQL) that already holds a governed run with its audit trail. What is checked:

* the rehearsal writes nothing: every row of every store table and the files of the Airflow home
  are the same before and after, the audit trail still verifies, no log line reports its
  transitions;
* no store connection is held across the fork (the pool is empty, no file descriptor on the SQLite
  file);
* a forked child then records a task's two hooks on the real run without compiling any statement of
  its own (the rehearsal's point), and its writes land once in a trail that verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.core.states import StepState

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG, RUN = "rehearsed", "manual__2026-12-06"
HMAC_KEY = "wfe-test-only-hmac-key-0123456789abcdef"

PROBE = """
import json, logging, os, sys
from types import SimpleNamespace

lines = []

class Keep(logging.Handler):
    def emit(self, record):
        lines.append(record.getMessage())

logging.getLogger("airflow_wfe").addHandler(Keep())
logging.getLogger("airflow_wfe").setLevel(logging.INFO)

from airflow_wfe.adapters.listeners import process
from airflow_wfe.config import get_settings
from airflow_wfe.store.engine import get_engine

process.prepare_worker()
engine = get_engine(get_settings().store_conn)
store_file = engine.url.database if engine.dialect.name == "sqlite" else None
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        fds.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
report = {
    "warm_up_failed": [line for line in lines if "warm-up failed" in line or "not checked" in line],
    "rehearsal_lines": [line for line in lines if "rehearsal" in line],
    "pooled": engine.pool.checkedin() + engine.pool.checkedout(),
    "store_fds": [p for p in fds if store_file and p.startswith(os.path.realpath(store_file))],
    "parent_cached": len(engine._compiled_cache),
}
if sys.argv[1] == "fork":
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        from airflow_wfe.adapters.listeners.listener import get_listener

        class TaskInstance(SimpleNamespace):
            def get_template_context(self):
                return {"dag_run": SimpleNamespace(run_type="manual", conf={}), "params": {}}

        dag = SimpleNamespace(tags=["wfe"], dag_id=sys.argv[2])
        ti = TaskInstance(dag_id=sys.argv[2], run_id=sys.argv[3], task_id="forked", map_index=-1,
                          try_number=1, dag_version_id="v1", task=SimpleNamespace(dag=dag),
                          state="running")
        before = len(engine._compiled_cache)
        get_listener().on_task_instance_running(None, ti)
        get_listener().on_task_instance_success(None, ti)
        os.write(write, json.dumps({"compiled": len(engine._compiled_cache) - before}).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    report["child_status"] = status
    report["child"] = json.loads(os.read(read, 10000) or b"{}")
if sys.argv[1] == "parse":
    # A task process re-parsing its governed DAG file, as Airflow does it: the supervisor has
    # blocked the ORM, then the cluster policy runs on every task and on the DAG.
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    # Loaded in every Airflow process: the policy by its entry point, the listener by the plugin.
    from airflow_wfe.adapters import cluster_policy
    from airflow_wfe.adapters.listeners import listener  # noqa: F401

    before = set(sys.modules)
    with DAG(sys.argv[2], schedule=None, tags=["wfe"]) as dag:
        for number in range(3):
            EmptyOperator(task_id=f"t{number}")
    for task in dag.tasks:
        cluster_policy.task_policy(task)
    cluster_policy.dag_policy(dag)
    report["imported"] = sorted(m for m in set(sys.modules) - before if m.startswith("airflow_wfe"))
    report["checked"] = [
        type(vars(task).get("pre_execute")).__name__ for task in dag.tasks
    ]
print("PROBE " + json.dumps(report))
"""


@pytest.fixture
def store_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A store holding one governed run (two steps), configured for this process and the probes."""
    from airflow_wfe.engine.harness import get_recorder, reset_runtime

    if request.param == "sqlite":
        # The embedded default: a key generated at the first append (in the Airflow home).
        url, key = f"sqlite:///{tmp_path / 'wfe.db'}", ""
    else:
        url, key = request.getfixturevalue("pg_url"), HMAC_KEY
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__WFE__STORE_CONN": url,
        "AIRFLOW__WFE__AUDIT_SIGNING_KEY": key,
        "AIRFLOW__WFE__SPOOL_PATH": str(tmp_path / "spool"),
        "AIRFLOW__WFE__GOVERN": "all",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_runtime()
    recorder = get_recorder()
    facts = {"run_type": "manual", "dag_version_id": "v1"}
    recorder.run_started(DAG, RUN, actor="scheduler", reason="started", facts=facts)
    for task in ("extract", "load"):
        for state in (StepState.RUNNING, StepState.SUCCEEDED):
            recorder.step(DAG, RUN, task, state, actor="worker", reason="task", try_number=1)
    reset_runtime()  # no connection of this process stays open on the store
    yield env
    reset_runtime()


def _probe(env: dict[str, str], mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, DAG, RUN],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("PROBE ")][-1]
    report: dict[str, Any] = json.loads(line[len("PROBE ") :])
    return report


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every store table, in a stable order."""
    from sqlalchemy import create_engine, select

    from airflow_wfe.store.tables import metadata

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(
                    (tuple(map(repr, row)) for row in connection.execute(select(table))),
                )
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def _files(home: Path) -> dict[str, int]:
    """The Airflow home's files and sizes (SQLite's WAL and shared-memory files left out)."""
    return {
        str(p.relative_to(home)): p.stat().st_size
        for p in home.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def _verified(env: dict[str, str]) -> int:
    from airflow_wfe.core.audit.signing import load_signer
    from airflow_wfe.store import SqlStore

    store = SqlStore(env["AIRFLOW__WFE__STORE_CONN"])
    key = load_signer(
        env["AIRFLOW__WFE__AUDIT_SIGNING_KEY"], Path(env["AIRFLOW_HOME"]) / "wfe_audit.key"
    )
    report = store.verify_audit(key)
    assert report.ok, report.findings
    return report.events


@pytest.mark.parametrize(
    "store_env", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_rehearsal_writes_nothing_and_holds_no_connection(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    url = store_env["AIRFLOW__WFE__STORE_CONN"]
    rows, files, events = _snapshot(url), _files(tmp_path), _verified(store_env)

    report = _probe(store_env, "warm")

    assert report["warm_up_failed"] == []
    assert report["parent_cached"] > 0, "the rehearsal compiled the write path's statements"
    assert _snapshot(url) == rows, "the rehearsal left rows in the store"
    assert _files(tmp_path) == files, "the rehearsal wrote files (spool, key, anchors)"
    assert _verified(store_env) == events
    assert report["rehearsal_lines"] == [], "the rehearsal's transitions were logged"
    assert report["pooled"] == 0, "a store connection is kept across the fork"
    assert report["store_fds"] == []


@pytest.mark.parametrize(
    "store_env", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_forked_task_records_without_compiling(store_env: dict[str, str]) -> None:
    from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

    events = _verified(store_env)

    report = _probe(store_env, "fork")

    assert report["child_status"] == 0
    assert report["child"] == {"compiled": 0}, "the task process compiled statements itself"
    reset_runtime()
    run = get_runtime_store().get_run(DAG, RUN)
    forked = [s for s in run.steps if s.step_id == "forked"]
    assert [s.state for s in forked] == [StepState.SUCCEEDED]
    assert [t.to_state for t in forked[0].transitions] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert _verified(store_env) == events + 3


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
def test_a_task_process_parses_its_governed_dag_without_importing(
    store_env: dict[str, str],
) -> None:
    """After the warm-up, the cluster policy's run over a governed DAG in a task process loads no
    module of airflow-wfe: each one it did load cost every task process its import again (the
    parse-time policies ~4.5 ms of CPU, the saga's wiring ~1.4 ms, docs/performance.md)."""
    report = _probe(store_env, "parse")

    assert report["warm_up_failed"] == []
    assert report["checked"] == ["FailClosedCheck"] * 3, "the cluster policy did not run"
    assert report["imported"] == []
