"""Task overhead: the same DAGs through ``airflow dags test``, plain, governed, and with OpenLineage.

Four DAGs of no-op TaskFlow tasks (20 and 100 tasks, as a chain and all parallel), one file each, are
run with the whole ``airflow dags test`` command timed (wall clock, the way a user sees it):

* plain: airflow-wfe disabled (``[wfe] enabled = False``), OpenLineage disabled;
* governed: airflow-wfe on (state store on SQLite, audit trail signed, StatsD to a UDP port nobody
  reads), OpenLineage disabled;
* OpenLineage, the peer: its provider with the console transport, airflow-wfe disabled, once in its
  default mode (a fork per event) and once with ``[openlineage] execute_in_thread = True``.

Modes are interleaved within each round, so a slow minute of the machine hits them all alike. The
figure per DAG and mode is the median ratio to the plain run of the same round.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Result, emit, quick, runs, scratch_home, skip, summarise

AREA = "task overhead"

_DAG = """from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None, tags=["wfe"]) as dag:

    @task
    def noop() -> None:
        return None

    tasks = [noop.override(task_id=f"t{{i:03d}}")() for i in range({count})]
    if "{shape}" == "chain":
        for upstream, downstream in zip(tasks, tasks[1:]):
            upstream >> downstream
"""


def _openlineage_installed() -> bool:
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        return False
    return True


def _modes(udp_port: int) -> dict[str, dict[str, str]]:
    off = {"AIRFLOW__WFE__ENABLED": "False", "AIRFLOW__OPENLINEAGE__DISABLED": "True"}
    modes = {
        "plain": off,
        "governed": {
            "AIRFLOW__WFE__ENABLED": "True",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(udp_port),
        },
    }
    if _openlineage_installed():
        lineage = {
            "AIRFLOW__WFE__ENABLED": "False",
            "AIRFLOW__OPENLINEAGE__DISABLED": "False",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "console"}',
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "bench",
        }
        modes["openlineage (fork per event)"] = {
            **lineage,
            "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "False",
        }
        modes["openlineage (thread mode)"] = {
            **lineage,
            "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        }
    return modes


def _airflow(*args: str, env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("ab") as out:
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return time.perf_counter() - start


def main() -> None:
    import socket

    home = scratch_home("wfe-bench-dags-")
    sizes = (5,) if quick() else (20, 100)
    dags = []
    for count in sizes:
        for shape in ("chain", "parallel"):
            dag_id = f"bench_{shape}_{count}"
            (home / "dags" / f"{dag_id}.py").write_text(
                _DAG.format(dag_id=dag_id, count=count, shape=shape)
            )
            dags.append((dag_id, count, shape))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))  # bound, never read: StatsD sends cost what they cost in production
    modes = _modes(int(sink.getsockname()[1]))
    log = home / "airflow.log"
    base = dict(os.environ)
    _airflow("db", "migrate", env=base, log=log)
    _airflow("wfe", "db", "upgrade", env=base, log=log)
    # One untimed run per mode: the DAGs get serialised, caches and the store warm up.
    for extra in modes.values():
        _airflow("dags", "test", dags[0][0], env={**base, **extra}, log=log)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs()):
        for dag_id, _count, _shape in dags:
            for mode, extra in modes.items():
                elapsed = _airflow("dags", "test", dag_id, env={**base, **extra}, log=log)
                times.setdefault((dag_id, mode), []).append(elapsed)
    results: list[Result] = []
    for dag_id, count, shape in dags:
        plain = times[(dag_id, "plain")]
        results.append(
            summarise(
                AREA, f"{count} tasks, {shape}: plain wall time", "s", plain, note=f"{dag_id}"
            )
        )
        for mode in modes:
            if mode == "plain":
                continue
            ratios = [t / p for t, p in zip(times[(dag_id, mode)], plain, strict=True)]
            governed_goal = mode == "governed" and count == 100
            results.append(
                summarise(
                    AREA,
                    f"{count} tasks, {shape}: {mode} / plain",
                    "×",
                    ratios,
                    goal="≤ 1.03" if governed_goal else "",
                    check=(lambda v: v <= 1.03) if governed_goal else None,
                    note=f"{mode} median {statistics.median(times[(dag_id, mode)]):.2f} s",
                )
            )
    if not _openlineage_installed():
        results.append(
            skip(
                AREA,
                "OpenLineage peer",
                "apache-airflow-providers-openlineage is not installed (pip install '.[bench]')",
            )
        )
    sink.close()
    emit(results)


if __name__ == "__main__":
    main()
