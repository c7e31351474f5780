"""What the listener costs per recorded transition, measured on its real hooks.

Each simulated task goes through ``on_task_instance_running`` and ``on_task_instance_success`` of the
plugin's listener, exactly as Airflow calls them in a task process, against a SQLite store with the
audit trail (signed head) and StatsD on (to a UDP port nobody reads). The figure is the hook's wall
time divided by the transitions it recorded (2 at a task's start, 1 at its end).
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


def main() -> None:
    import os

    scratch_home("wfe-bench-listener-")
    os.environ.update(
        {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(dead_udp_port()),
        }
    )
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
        ]
    )


if __name__ == "__main__":
    main()
