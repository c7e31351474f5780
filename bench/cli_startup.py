"""Command-line start-up: ``wfe runs list`` beside ``airflow dags list`` and ``airflow version``.

Each figure is one fresh process, as a shell starts it, timed from start to exit (wall) and by the
CPU it used (user + system, from ``getrusage`` of children, which a loaded machine inflates less).
The store holds 50 governed runs in a scratch ``AIRFLOW_HOME``; ``wfe runs list`` prints them all.
``airflow version`` is Airflow's own floor (its CLI parser, provider CLI commands included, is built
before any command runs); ``airflow dags list`` is the nearest Airflow command to ``wfe runs list``.
Goal (issue 21): ``wfe runs list`` answers in at most 0.5 s.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import emit, quick, runs, scratch_home, summarise

AREA = "cli"
BIN = Path(sys.executable).parent
RUNS_IN_STORE = 50


def _fill_store(home: Path) -> None:
    from airflow_wfe.core.states import StepState
    from airflow_wfe.testing import temporary_store

    logging.getLogger("airflow_wfe").setLevel(logging.WARNING)
    with temporary_store(home) as ctx:
        for number in range(RUNS_IN_STORE):
            run_id = f"manual__2026-11-25T10:{number // 60:02d}:{number % 60:02d}+00:00"
            ctx.recorder.run_started("etl", run_id, actor="bench", reason="bench")
            ctx.recorder.step(
                "etl", run_id, "a", StepState.RUNNING, actor="bench", reason="go", try_number=1
            )
            ctx.recorder.step(
                "etl", run_id, "a", StepState.SUCCEEDED, actor="bench", reason="ok", try_number=1
            )
            ctx.recorder.run_finished("etl", run_id, succeeded=True, actor="bench", reason="ok")
    os.environ["AIRFLOW__WFE__STORE_CONN"] = f"sqlite:///{home / 'wfe.db'}"


def _once(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    home = scratch_home("wfe-bench-cli-")
    _fill_store(home)
    _once([str(BIN / "airflow"), "db", "migrate"])  # `airflow dags list` reads the metadata DB
    commands = {
        "wfe runs list": [str(BIN / "wfe"), "runs", "list"],
        "airflow version": [str(BIN / "airflow"), "version"],
        "airflow dags list": [str(BIN / "airflow"), "dags", "list"],
    }
    # Airflow writes airflow.cfg and migrates nothing for these; one warm-up each fills the OS
    # file cache, as on a machine where the command ran before.
    for command in commands.values():
        _once(command)
    count = runs() if quick() else max(runs(), 7)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(count):  # interleaved, so a burst of load hits every command alike
        for name, command in commands.items():
            wall, cpu = _once(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    store = f"{RUNS_IN_STORE} runs, SQLite"
    results = [
        summarise(
            AREA,
            f"wfe runs list ({store}), wall",
            "s",
            walls["wfe runs list"],
            goal="≤ 0.5",
            check=lambda median: median <= 0.5,
            note="fresh process; Airflow is not imported",
        ),
        summarise(AREA, f"wfe runs list ({store}), CPU", "s", cpus["wfe runs list"]),
    ]
    for name in ("airflow version", "airflow dags list"):
        results.append(summarise(AREA, f"{name}, wall", "s", walls[name], note="for comparison"))
        results.append(summarise(AREA, f"{name}, CPU", "s", cpus[name]))
    emit(results)


if __name__ == "__main__":
    main()
