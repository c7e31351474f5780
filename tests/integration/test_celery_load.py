"""Load: 50 governed runs of a 20-step DAG at once on CeleryExecutor, PostgreSQL and Redis.

Issue #22's load check of the production path. The harness (``cluster.py``) runs api-server,
dag-processor, scheduler and two ``airflow celery worker`` processes with 4 slots each (Airflow's
``parallelism`` 8); Redis (a database of this test's own) is the broker, PostgreSQL holds Airflow's
metadata database, Celery's results and the wfe store (fresh databases, an Ed25519 signing key).
50 runs of ``wfe_load`` (``tests/scenarios/load``: 20 trivial steps, 18 of them in parallel) are
triggered together, 1,000 task instances in all, each a fresh task process below a Celery worker
writing its transitions to the store while seven others do the same.

Checked once every run is over:

* Airflow says every run succeeded, every task instance once (try 1);
* every run is COMPLETED in wfe, with exactly the run history of a successful run, and exactly one
  step per task instance Airflow ran, each with the history of a successful try recorded by its own
  task process (not made up later by the run end's reconciliation): no transition missing (each
  move starts where the previous one ended), none recorded twice, none extra;
* ``wfe audit verify`` (signatures, chains, replay of the state tables) passes;
* no component or task log says ``database is locked``, and the wfe listener never complains that
  it could not record;
* the listener's own timers (``wfe.listener.duration.<hook>``, StatsD over UDP to a socket of this
  test) came once per hook and task instance or run, and the median of each task hook stays within
  :data:`HOOK_ANCHOR_RATIO` times the median of the anchor: a fixed piece of Python work each step
  times in the same process at the same moment (``tests/scenarios/load``), so a busy machine
  stretches both alike. The absolute figures are printed.

Skips naming what is missing (Redis, PostgreSQL, the Celery provider); under
``WFE_REQUIRE_POSTGRES=1`` (CI) those skips are failures.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow_env import scenario
from celery_backends import REDIS_SERVER, fresh_databases, keygen
from cluster import CeleryBackends, Cluster, render_records
from timer_sink import TimerSink

DAG_ID = "wfe_load"
RUNS = 50
STEPS = 20
#: Airflow's ``parallelism``: two Celery workers with this many slots between them.
PARALLELISM = 8
WORKERS = 2
#: This test's Redis database (the Celery cluster test uses 5, the Celery bench 6-8).
REDIS_URL = os.environ.get("WFE_TEST_LOAD_REDIS_URL", f"{REDIS_SERVER}/9")
#: Budget for the components to come up and the 1,000 task instances to run: ~5 minutes on the CI
#: machine kind when it runs alone, 11-13 minutes while other work shares its two cores.
RUN_DEADLINE_S = 1500.0
#: How often a request the busy API server left unanswered (10 s) is asked again.
REQUEST_ATTEMPTS = 6
#: The hooks a task process runs for a successful try, and the DAG-run hooks in the scheduler.
TASK_HOOKS = ("on_task_instance_running", "on_task_instance_success")
RUN_HOOKS = ("on_dag_run_running", "on_dag_run_success")
#: Bound on the median wall time of each task hook, as a multiple of the anchor's median (see
#: docs/reliability.md, "Under load"). The anchor is ~11 ms of CPU; on a quiet machine a Celery task
#: process's first hook takes ~20 ms and later ones ~6 ms (docs/performance.md), ratios ~1.8 and
#: ~0.5. Under this load (the development machine at load 10-14) the medians were 68 and 24 ms
#: against an anchor of 35 ms: 1.95 and 0.69. The bound leaves half as much again for the hooks'
#: PostgreSQL round trips, which wait on a busy server too, and fails long before a regression to the
#: first hook before the Celery warm-up (a 295 ms median, some 27 anchors).
HOOK_ANCHOR_RATIO = 3.0
#: Where each step's anchor timer arrives, and under which key the sink keeps it.
ANCHOR_NAME = "wfe_load.anchor"
ANCHOR = "anchor"

#: A successful run's history, and a successful step's (try 1).
RUN_MOVES = [
    (None, "CREATED"),
    ("CREATED", "VALIDATED"),
    ("VALIDATED", "RUNNING"),
    ("RUNNING", "COMPLETED"),
]
#: Each step's moves are the task process's own (actor ``worker``): a hook that failed under load
#: would leave them to the run end's reconciliation (actor ``scheduler``), which hides the loss.
STEP_MOVES = [
    (None, "PENDING", 1, "worker"),
    ("PENDING", "RUNNING", 1, "worker"),
    ("RUNNING", "SUCCEEDED", 1, "worker"),
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.celery,
    pytest.mark.timeout(1800),
]


@pytest.fixture
def timers() -> Iterator[TimerSink]:
    # 1,000 tasks send a few packets each; a large buffer keeps a busy moment from dropping any.
    sink = TimerSink({ANCHOR_NAME: ANCHOR}, buffer_bytes=4 * 1024 * 1024)
    try:
        yield sink
    finally:
        sink.close()


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's reaped children so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


@pytest.fixture
def load_cluster(tmp_path: Path, timers: TimerSink) -> Iterator[Cluster]:
    """The Celery cluster on fresh PostgreSQL databases and this test's Redis database."""
    cpu_before = _children_cpu_s()
    with fresh_databases("wfe_load", REDIS_URL) as urls:
        key = keygen(tmp_path / "keys")
        cluster = Cluster(
            tmp_path,
            dags=scenario("load"),
            deadline_s=RUN_DEADLINE_S,
            database_url=urls["airflow"],
            celery=CeleryBackends(
                broker_url=REDIS_URL,
                result_backend=f"db+{urls['airflow']}",
                workers=WORKERS,
                concurrency=PARALLELISM // WORKERS,
            ),
            extra_env={
                "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
                "AIRFLOW__WFE__STORE_CONN": urls["store"],
                "AIRFLOW__WFE__AUDIT_SIGNING_KEY": f"ed25519:{key}",
                "AIRFLOW__WFE__STATSD_ON": "True",
                "AIRFLOW__WFE__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__WFE__STATSD_PORT": str(timers.port),
                "WFE_LOAD_ANCHOR_PORT": str(timers.port),
                # Bytecode as an installed package has it (a shell with PYTHONDONTWRITEBYTECODE
                # would make every task process compile what it imports).
                "PYTHONDONTWRITEBYTECODE": "",
                "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"),
            },
        )
        try:
            upgraded = cluster.wfe("db", "upgrade", timeout=120)
            if upgraded.returncode != 0:
                cluster.fail(f"wfe db upgrade exited with {upgraded.returncode}")
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
            # The components' CPU (reaped children: components, task processes, wfe commands; not
            # PostgreSQL's or Redis's): what the test costs a machine that runs nothing else.
            print(f"CPU of the cluster's processes: {_children_cpu_s() - cpu_before:.0f} s")


def _request(cluster: Cluster, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """``cluster.request``, asked again when the API server, busy with the load, does not answer
    within the harness's 10 s (every request here is safe to repeat)."""
    for attempt in range(REQUEST_ATTEMPTS):
        try:
            return cluster.request(method, path, body)
        except OSError as exc:  # urllib's URLError and socket timeouts are OSErrors
            cluster.mark(f"{method} {path}: no answer ({exc!r}), attempt {attempt + 1}")
    cluster.fail(f"{method} {path}: no answer in {REQUEST_ATTEMPTS} attempts")
    raise AssertionError  # pragma: no cover - fail raises


def _get(cluster: Cluster, path: str) -> Any:
    status, body = _request(cluster, "GET", path)
    if status != 200:
        cluster.fail(f"GET {path} answered {status}: {body}")
    return body


def _trigger_all(cluster: Cluster) -> list[str]:
    """Trigger :data:`RUNS` runs of the DAG back to back; their run ids.

    Each run gets its id from the test, so a trigger asked again after a timeout cannot make a
    second run: Airflow answers 409 for an id it already has.
    """
    cluster.wait_until(
        f"the dag-processor to parse {DAG_ID}",
        lambda: cluster.request("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200,
    )
    if _get(cluster, f"/api/v2/dags/{DAG_ID}").get("is_paused"):
        status, answer = _request(cluster, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        if status != 200:
            cluster.fail(f"unpausing {DAG_ID} answered {status}: {answer}")
    run_ids = [f"load__{number:02d}" for number in range(RUNS)]
    for run_id in run_ids:
        body = {"dag_run_id": run_id, "logical_date": None}
        status, answer = _request(cluster, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", body)
        if status not in (200, 409):
            cluster.fail(f"triggering {DAG_ID} {run_id} answered {status}: {answer}")
    cluster.mark(f"{RUNS} runs triggered")
    return run_ids


def _airflow_runs(cluster: Cluster) -> dict[str, dict[str, Any]]:
    body = _get(cluster, f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")
    return {run["dag_run_id"]: run for run in body["dag_runs"]}


def _task_instances(cluster: Cluster) -> dict[str, dict[str, dict[str, Any]]]:
    """Every task instance of the DAG, ``{run_id: {task_id: ti}}`` (Airflow's pages of 100)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    offset = 0
    while True:
        body = _get(
            cluster, f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances?limit=100&offset={offset}"
        )
        for ti in body["task_instances"]:
            found.setdefault(ti["dag_run_id"], {})[ti["task_id"]] = ti
        offset += len(body["task_instances"])
        if not body["task_instances"] or offset >= body["total_entries"]:
            return found


def _moves(transitions: list[dict[str, Any]], *, tries: bool) -> list[tuple[Any, ...]]:
    if tries:
        return [(t["from_state"], t["to_state"], t["try_number"], t["actor"]) for t in transitions]
    return [(t["from_state"], t["to_state"]) for t in transitions]


def _history_problems(run_id: str, record: dict[str, Any], tis: dict[str, Any]) -> list[str]:
    """How a run's wfe record differs from a successful run of the 20 steps Airflow ran."""
    problems = []
    if record["state"] != "COMPLETED":
        problems.append(f"{run_id}: run {record['state']}, not COMPLETED")
    if _moves(record["transitions"], tries=False) != RUN_MOVES:
        problems.append(f"{run_id}: run history {_moves(record['transitions'], tries=False)}")
    steps = Counter(step["step_id"] for step in record["steps"])
    doubled = sorted(step for step, n in steps.items() if n > 1)
    if doubled:
        problems.append(f"{run_id}: steps recorded more than once: {doubled}")
    if set(steps) != set(tis):
        problems.append(
            f"{run_id}: steps missing {sorted(set(tis) - set(steps))}, "
            f"extra {sorted(set(steps) - set(tis))}"
        )
    for step in record["steps"]:
        ti = tis.get(step["step_id"])
        moves = _moves(step["transitions"], tries=True)
        if ti is not None and (ti["state"], ti["try_number"]) != ("success", 1):
            problems.append(
                f"{run_id}: Airflow ran {step['step_id']} {ti['state']} try {ti['try_number']}"
            )
        if (step["state"], moves) != ("SUCCEEDED", STEP_MOVES):
            problems.append(f"{run_id}: {step['step_id']} {step['state']}, history {moves}")
    return problems


def _log_lines_with(cluster: Cluster, needle: str) -> list[str]:
    """Lines of the component and task logs that contain ``needle``."""
    files = sorted(cluster.logs.glob("*.log")) + sorted((cluster.home / "logs").glob("**/*.log"))
    return [
        f"{path.name}: {line[:300]}"
        for path in files
        for line in path.read_text(errors="replace").splitlines()
        if needle in line
    ]


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def test_fifty_governed_runs_at_once_on_celery(load_cluster: Cluster, timers: TimerSink) -> None:
    cluster = load_cluster
    cluster.login()
    started = time.monotonic()
    run_ids = _trigger_all(cluster)

    def all_finished() -> dict[str, dict[str, Any]] | None:
        runs = _airflow_runs(cluster)
        done = [r for r in runs.values() if r["state"] in ("success", "failed")]
        return runs if len(done) == RUNS else None

    airflow_runs = cluster.wait_until(f"all {RUNS} runs to finish", all_finished, interval=3.0)
    elapsed = time.monotonic() - started
    cluster.mark(f"all {RUNS} runs finished ({RUNS * STEPS} task instances in {elapsed:.0f} s)")

    tis = _task_instances(cluster)
    records = {
        run_id: _get(cluster, f"/wfe/api/v1/runs/{DAG_ID}/{quote(run_id, safe='')}")
        for run_id in run_ids
    }
    cluster.add_diagnostics(
        lambda: "--- wfe records (first 3):\n" + render_records(*list(records.values())[:3])
    )
    # The scheduler's DAG-run hooks write on a writer thread; give their timers a moment to land.
    expected_counts = {
        **dict.fromkeys((*TASK_HOOKS, ANCHOR), RUNS * STEPS),
        **dict.fromkeys(RUN_HOOKS, RUNS),
    }
    cluster.set_deadline(30.0)
    cluster.wait_until(
        "every hook's timer",
        lambda: all(timers.counts().get(h, 0) >= n for h, n in expected_counts.items()),
    )
    timings = timers.snapshot()
    summary = {
        hook: (len(values), _median_ms(values), sorted(values)[int(len(values) * 0.9)])
        for hook, values in sorted(timings.items())
        if values
    }
    cluster.add_diagnostics(lambda: f"--- listener timers (count, median ms, p90 ms): {summary}")
    verified = cluster.wfe("audit", "verify", "--json", timeout=300)

    def check() -> None:
        assert sorted(airflow_runs) == sorted(run_ids)
        assert {r["state"] for r in airflow_runs.values()} == {"success"}
        assert sum(len(by_task) for by_task in tis.values()) == RUNS * STEPS
        problems = [
            p for run_id in run_ids for p in _history_problems(run_id, records[run_id], tis[run_id])
        ]
        assert problems == [], "\n".join(problems[:40])
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert _log_lines_with(cluster, "database is locked") == []
        assert cluster.listener_complaints() == []
        for worker in cluster.celery.worker_names() if cluster.celery else []:
            assert "wfe listener: warmed up" in (cluster.logs / f"{worker}.log").read_text(), worker
        assert {h: len(timings.get(h, [])) for h in expected_counts} == expected_counts
        anchor = _median_ms(timings[ANCHOR])
        ratios = {hook: round(_median_ms(timings[hook]) / anchor, 2) for hook in TASK_HOOKS}
        slow = {hook: ratio for hook, ratio in ratios.items() if ratio > HOOK_ANCHOR_RATIO}
        assert slow == {}, (
            f"median hook time above {HOOK_ANCHOR_RATIO} x the anchor's ({anchor:.1f} ms): {slow}"
        )

    cluster.verify(check)
    print(
        f"{RUNS} runs x {STEPS} steps in {elapsed:.0f} s; listener timers (count, median, p90 ms):"
    )
    for hook, (count, median, p90) in summary.items():
        print(f"    {hook}: {count}, {median:.1f}, {p90:.1f}")
