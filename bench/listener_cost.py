"""What the listener costs per recorded transition, measured on its real hooks.

Each simulated task goes through ``on_task_instance_running`` and ``on_task_instance_success`` of the
plugin's listener, exactly as Airflow calls them in a task process, against a SQLite store with the
audit trail (signed head) and StatsD on (to a UDP port nobody reads). The figure is the hook's wall
time divided by the transitions it recorded (2 at a task's start, 1 at its end).

**Forked task processes** (the production path, where every task is a fresh fork): a fresh
interpreter loads the listener and warms up as a scheduler's ``on_starting`` or a Celery worker's
``worker_init`` does (``prepare_worker``), then forks one child per task, one at a time; each child
runs the task's two hooks on a run the "scheduler" (another process) already brought to RUNNING,
and exits. CPU per child comes from ``getrusage(RUSAGE_CHILDREN)``, so it counts everything the fork
costs the child (copy-on-write faults included); children that only exit are forked in between, and
the figure is the difference of the medians: what the two hooks cost a task process in CPU. The
same runs without the warm-up (``cold``: a process that never called it) show what it saves.
``python -m bench.listener_cost forked`` prints just these figures as text.
"""

from __future__ import annotations

import socket
import statistics
import time
from types import SimpleNamespace
from typing import Any

from bench.common import emit, percentile, quick, runs, scratch_home, summarise

AREA = "listener"


class _TaskInstance(SimpleNamespace):
    """Just what the listener reads from a Task SDK ``RuntimeTaskInstance``."""

    def get_template_context(self) -> dict[str, Any]:
        return {"dag_run": SimpleNamespace(run_type="manual", conf={}), "params": {}}


def dead_udp_port() -> int:
    """A local UDP port that is bound but never read: sends succeed and go nowhere."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    _keep.append(sink)
    return int(sink.getsockname()[1])


_keep: list[socket.socket] = []


def measure(tasks: int, run_number: int) -> tuple[list[float], list[float]]:
    """Per-transition milliseconds of every hook call, and per hook call."""
    from airflow_wfe.adapters.listeners.listener import get_listener

    listener = get_listener()
    dag = SimpleNamespace(tags=["wfe"], dag_id="bench_listener")
    per_transition, per_call = [], []
    run_id = f"manual__bench_{run_number}"
    for i in range(tasks):
        ti = _TaskInstance(
            dag_id="bench_listener",
            run_id=run_id,
            task_id=f"t{i:03d}",
            map_index=-1,
            try_number=1,
            dag_version_id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            task=SimpleNamespace(dag=dag),
            state="running",
        )
        for hook, transitions in (
            (listener.on_task_instance_running, 2),
            (listener.on_task_instance_success, 1),
        ):
            start = time.perf_counter()
            hook(None, ti)
            elapsed = (time.perf_counter() - start) * 1000
            # The first start also records the run's CREATED, VALIDATED and RUNNING.
            recorded = 5 if i == 0 and transitions == 2 else transitions
            per_call.append(elapsed)
            per_transition.append(elapsed / recorded)
    return per_transition, per_call


_SCHEDULER_START = """
from airflow_wfe.engine.harness import get_recorder
get_recorder().run_started({dag!r}, {run!r}, actor="scheduler", reason="scheduler started the run",
    facts={{"run_type": "manual", "dag_version_id": {version!r}}})
"""


def _task_instance(dag_id: str, run_id: str, task_id: str) -> _TaskInstance:
    dag = SimpleNamespace(tags=["wfe"], dag_id=dag_id)
    return _TaskInstance(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=-1,
        try_number=1,
        dag_version_id=_VERSION,
        task=SimpleNamespace(dag=dag),
        state="running",
    )


_VERSION = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def _child_cpu_ms(work: Any) -> tuple[float, bytes]:
    """Fork a child running ``work`` (which returns bytes for the parent) and exiting; its CPU."""
    import os
    import resource

    read, write = os.pipe()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.write(write, work())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 4096)
    os.close(read)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if status != 0:
        raise SystemExit(f"a forked child exited with status {status}")
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return used * 1000, answer


def forked(tasks: int, *, warm: bool) -> dict[str, float]:
    """In this (fresh) process: warm up or not, fork ``tasks`` task children and as many empty
    ones, alternately. Medians in ms: ``hooks`` (child CPU, hook children minus empty ones),
    ``first`` and ``second`` (each hook's own CPU inside the child), ``empty`` (an empty child)."""
    import json
    import os
    import subprocess
    import sys
    import time

    dag_id, run_id = "bench_forked", f"manual__{os.getpid()}"
    script = _SCHEDULER_START.format(dag=dag_id, run=run_id, version=_VERSION)
    subprocess.run([sys.executable, "-c", script], check=True)
    import airflow.plugins_manager  # noqa: F401 - a scheduler or worker has Airflow loaded

    from airflow_wfe.adapters.listeners import listener as listener_module
    from airflow_wfe.adapters.listeners import process

    if warm:
        process.prepare_worker()
    listener = listener_module.get_listener()

    def task(number: int) -> Any:
        def hooks() -> bytes:
            ti = _task_instance(dag_id, run_id, f"t{number:03d}")
            start = time.process_time()
            listener.on_task_instance_running(None, ti)
            middle = time.process_time()
            listener.on_task_instance_success(None, ti)
            end = time.process_time()
            return json.dumps([(middle - start) * 1000, (end - middle) * 1000]).encode()

        return hooks

    reparse = _policy_reparse(dag_id, REPARSED_TASKS)
    full, empty, first, second, policy = [], [], [], [], []
    for number in range(tasks):
        used, answer = _child_cpu_ms(task(number))
        full.append(used)
        hook_ms = json.loads(answer)
        first.append(hook_ms[0])
        second.append(hook_ms[1])
        empty.append(_child_cpu_ms(lambda: b"")[0])
        policy.append(_child_cpu_ms(reparse)[0])
    from airflow_wfe.engine.harness import get_runtime_store

    steps = get_runtime_store().get_run(dag_id, run_id).steps
    if [s.state for s in steps] != ["SUCCEEDED"] * tasks:
        raise SystemExit(f"forked tasks recorded {[s.state for s in steps]}")
    median = statistics.median
    return {
        "hooks": median(full) - median(empty),
        "first": median(first),
        "second": median(second),
        "empty": median(empty),
        "policy": median(policy) - median(empty),
    }


#: Tasks of the DAG whose re-parse the forked children run the cluster policy on (the scheduler
#: mode's largest fan-out).
REPARSED_TASKS = 100


def _policy_reparse(dag_id: str, count: int) -> Any:
    """A child's work: what the cluster policy does while a task process re-parses its governed
    DAG file (each task, then the DAG), on a DAG built before the fork. Airflow's supervisor marks
    the child as a task process by blocking its ORM, which the policy reads."""
    import os

    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from airflow_wfe.adapters import cluster_policy

    with DAG(dag_id, schedule=None, tags=["wfe"]) as dag:
        for number in range(count):
            EmptyOperator(task_id=f"t{number:03d}")

    def reparse() -> bytes:
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"
        for task in dag.tasks:
            cluster_policy.task_policy(task)
        cluster_policy.dag_policy(dag)
        return b""

    return reparse


def _forked_in_fresh_process(tasks: int, *, warm: bool) -> dict[str, float]:
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.listener_cost", "forked-json", str(tasks), str(int(warm))],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def forked_results(tasks: int) -> list[Any]:
    """The forked-process figures over the runs, warm-up and cold interleaved."""
    by: dict[tuple[bool, str], list[float]] = {}
    for _ in range(1 if quick() else runs()):
        for warm in (True, False):
            for key, value in _forked_in_fresh_process(tasks, warm=warm).items():
                by.setdefault((warm, key), []).append(value)
    rows = []
    workload = f"{tasks} forked task processes per run, each its running + success hooks"
    for warm, label in ((True, "after the warm-up"), (False, "cold")):
        rows += [
            summarise(
                AREA,
                f"forked task process, both hooks' CPU, {label}",
                "ms",
                by[(warm, "hooks")],
                note=f"{workload}; child CPU minus an empty child's "
                f"({statistics.median(by[(warm, 'empty')]):.1f} ms)",
            ),
            summarise(
                AREA, f"forked task process, first hook CPU, {label}", "ms", by[(warm, "first")]
            ),
            summarise(
                AREA, f"forked task process, second hook CPU, {label}", "ms", by[(warm, "second")]
            ),
            summarise(
                AREA,
                f"forked task process, cluster policy on its DAG's re-parse, {label}",
                "ms",
                by[(warm, "policy")],
                note=f"a governed DAG of {REPARSED_TASKS} tasks: the policy on each task and on "
                "the DAG, as a task process re-parses its file; child CPU minus an empty child's",
            ),
        ]
    return rows


def _setup_environment() -> None:
    import os

    scratch_home("wfe-bench-listener-")
    os.environ.update(
        {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(dead_udp_port()),
        }
    )


def main() -> None:
    _setup_environment()
    import logging

    from airflow_wfe.engine.harness import get_recorder

    recorder = get_recorder()
    assert getattr(recorder.emitter, "active", False), "StatsD should be on for this bench"
    recorder.store.list_runs(limit=1)  # create the store before timing
    # Task logs go to a file in Airflow; here the log lines would go to this process's stderr.
    logging.getLogger("airflow_wfe").setLevel(logging.INFO)
    tasks = 20 if quick() else 200
    medians, p99s, call_medians, call_p99s = [], [], [], []
    measure(5, -1)  # warm-up: imports, statement caches
    for number in range(runs()):
        per_transition, per_call = measure(tasks, number)
        medians.append(statistics.median(per_transition))
        p99s.append(percentile(per_transition, 0.99))
        call_medians.append(statistics.median(per_call))
        call_p99s.append(percentile(per_call, 0.99))
    workload = f"{tasks} tasks × (running + success hooks) per run, SQLite store, audit + StatsD on"
    emit(
        [
            summarise(
                AREA,
                "listener cost per recorded transition, median",
                "ms",
                medians,
                goal="≤ 1",
                check=lambda v: v <= 1.0,
                note=workload,
            ),
            summarise(
                AREA,
                "listener cost per recorded transition, p99",
                "ms",
                p99s,
                goal="≤ 5",
                check=lambda v: v <= 5.0,
            ),
            summarise(AREA, "listener hook call (1–2 transitions), median", "ms", call_medians),
            summarise(AREA, "listener hook call (1–2 transitions), p99", "ms", call_p99s),
            *forked_results(5 if quick() else 30),
        ]
    )


def _forked_main(argv: list[str]) -> None:
    import json

    if argv[0] == "forked-json":  # one measuring process (the environment is its parent's)
        print(json.dumps(forked(int(argv[1]), warm=argv[2] == "1")))
        return
    _setup_environment()
    for row in forked_results(5 if quick() else 30):
        print(f"{row.metric}: median {row.median:.2f} {row.unit} ({row.low:.2f}–{row.high:.2f})")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] and sys.argv[1].startswith("forked"):
        _forked_main(sys.argv[1:])
    else:
        main()
