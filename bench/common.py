"""What every bench module shares: run counts, statistics, result lines and a scratch Airflow home.

A result is one row of the table: a figure measured ``runs`` times, summarised as median, min and max,
with the goal it is held against. Modules print results as JSON lines on stdout (everything else they
print goes to stderr), so :mod:`bench.run` can collect them from a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Result",
    "emit",
    "percentile",
    "quick",
    "runs",
    "scratch_home",
    "skip",
    "summarise",
    "timed",
]

#: Marks a result line among whatever else a module (or Airflow) prints on stdout.
PREFIX = "BENCH-RESULT "


def runs() -> int:
    """How many runs each figure is measured over (``BENCH_RUNS``, at least 1; 2 in quick mode)."""
    default = "2" if quick() else "5"
    return max(1, int(os.environ.get("BENCH_RUNS", default)))


def quick() -> bool:
    """Quick mode (``BENCH_QUICK=1``): tiny workloads that only prove the harness still works."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0", "false", "False")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Result:
    """One row of the table.

    Attributes:
        area: the section of the issue (task overhead, listener, parse, audit, policy, statsd).
        metric: what was measured, with its workload.
        unit: unit of ``median``/``low``/``high``.
        median, low, high: median, min and max over the runs (``None`` when skipped).
        goal: the goal as text (``≤ 1.03``), empty when the row is context only.
        met: whether the median meets the goal (``None``: no goal, or skipped).
        note: anything the reader needs (a skip reason, the anchor, the workload).
        runs: how many runs the figures come from.
    """

    area: str
    metric: str
    unit: str
    median: float | None
    low: float | None
    high: float | None
    goal: str = ""
    met: bool | None = None
    note: str = ""
    runs: int = 0


def summarise(
    area: str,
    metric: str,
    unit: str,
    values: Sequence[float],
    *,
    goal: str = "",
    check: Callable[[float], bool] | None = None,
    note: str = "",
) -> Result:
    """A result from one value per run; ``check`` judges the median against the goal."""
    median = statistics.median(values)
    return Result(
        area=area,
        metric=metric,
        unit=unit,
        median=median,
        low=min(values),
        high=max(values),
        goal=goal,
        met=None if check is None else bool(check(median)),
        note=note,
        runs=len(values),
    )


def skip(area: str, metric: str, reason: str, *, goal: str = "") -> Result:
    """A row that could not be measured here, saying why."""
    return Result(area, metric, "", None, None, None, goal=goal, met=None, note=reason)


def emit(results: Sequence[Result]) -> None:
    """Print results as JSON lines for :mod:`bench.run`."""
    for result in results:
        sys.stdout.write(PREFIX + json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()


def parse_results(text: str) -> list[Result]:
    """The results a module printed (other lines are ignored)."""
    found = []
    for line in text.splitlines():
        if line.startswith(PREFIX):
            found.append(Result(**json.loads(line[len(PREFIX) :])))
    return found


def timed(function: Callable[[], Any]) -> float:
    """Seconds one call of ``function`` takes (``perf_counter``)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def scratch_home(prefix: str) -> Path:
    """A fresh Airflow home for one bench process, set in the environment before Airflow loads.

    ``BENCH_HOME`` (set by the runner) holds them all, so the runner removes them in one go.
    """
    parent = os.environ.get("BENCH_HOME") or None
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{home}/wfe.db",
        }
    )
    (home / "dags").mkdir()
    return home
