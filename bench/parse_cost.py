"""Parse-time cost: what a DAG file pays for airflow-wfe, in a fresh interpreter each run.

Airflow 3 re-parses the DAG file in every task process, so these costs are paid per task. Each figure
is measured in a new process (imports are cached per process): ``import airflow_wfe`` right after
``airflow.sdk``, the plugin module (``airflow_wfe.plugin``, which Airflow loads in every component),
and a 100-step YAML workflow compiled to a DAG by ``load_workflows``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.common import emit, quick, runs, scratch_home, summarise

AREA = "parse"

# Airflow itself may import the package while ``airflow.sdk`` loads (the cluster-policy entry point),
# so timing ``import airflow_wfe`` afterwards would find it cached: ``-X importtime`` reports what
# each module cost whenever it was first imported.
_IMPORTS = "import airflow.sdk; import airflow_wfe; import airflow_wfe.plugin"

_COMPILE = """
import json, sys, time, warnings
import airflow.sdk
import airflow_wfe
folder = sys.argv[1]
t0 = time.perf_counter()
from airflow_wfe import load_workflows
dags = load_workflows(folder, namespace={})
t1 = time.perf_counter()
assert len(dags) == 1 and len(next(iter(dags.values())).tasks) == 100, dags
print(json.dumps({"compile": (t1 - t0) * 1000}))
"""


def _workflow(folder: Path, steps: int) -> None:
    (folder / "bench_steps.py").write_text("def noop() -> None:\n    return None\n")
    lines = [
        "name: bench_yaml_100",
        'version: "1.0.0"',
        "owner: bench",
        "schedule: null",
        "steps:",
    ]
    for i in range(steps):
        lines.append(f"  s{i:03d}:")
        lines.append("    run: bench_steps:noop")
        if i:
            lines.append(f"    needs: [s{i - 1:03d}]")
    (folder / "bench_yaml_100.yaml").write_text("\n".join(lines) + "\n")


def bytecode_env(home: Path) -> dict[str, str]:
    """The environment of the fresh interpreters: bytecode cached, as in Airflow's processes.

    A deployed package has its ``.pyc`` files (written at install, or at the first import), so a
    DAG file's parse does not compile airflow-wfe's sources. A shell with
    ``PYTHONDONTWRITEBYTECODE`` and a tree without ``__pycache__`` would add that compilation to
    every run; a private ``PYTHONPYCACHEPREFIX``, filled by one untimed run first, keeps the figures
    independent of both.
    """
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(home / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _import_times(env: dict[str, str]) -> dict[str, float]:
    """Import time (ms) of the package and of the plugin module, in a fresh process.

    The package is often imported by Airflow itself (entry points) while ``airflow.sdk`` loads, and
    the editable install's finder hides its top-level line: the package figure is the sum of the
    cumulative times of the outermost ``airflow_wfe`` modules imported before the plugin module.
    """
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _IMPORTS],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stderr
    rows = []
    for line in err.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            rows.append((len(name) - len(name.lstrip()), name.strip(), int(parts[1]) / 1000))
    package = plugin = 0.0
    for i, (indent, name, cumulative) in enumerate(rows):
        if name == "airflow_wfe.plugin":
            plugin = cumulative
            break
        if not name.startswith("airflow_wfe"):
            continue
        parent = next((r for r in rows[i + 1 :] if r[0] < indent), None)
        if parent is None or not parent[1].startswith("airflow_wfe"):
            package += cumulative
    return {"package": package, "plugin": plugin}


def _run(code: str, *args: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    home = scratch_home("wfe-bench-parse-")
    folder = home / "dags" / "workflows"
    folder.mkdir()
    _workflow(folder, 100)
    count = runs()
    env = bytecode_env(home)
    # untimed: writes the bytecode of everything the timed runs import
    _import_times(env)
    _run(_COMPILE, str(folder), env=env)
    imports = [_import_times(env) for _ in range(count)]
    compiles = [_run(_COMPILE, str(folder), env=env)["compile"] for _ in range(count)]
    note = "fresh interpreter per run (bytecode cached), python -X importtime (cumulative)" + (
        " (quick mode)" if quick() else ""
    )
    emit(
        [
            summarise(
                AREA,
                "import airflow_wfe (after airflow.sdk)",
                "ms",
                [i["package"] for i in imports],
                goal="≤ 10",
                check=lambda v: v <= 10.0,
                note=note,
            ),
            summarise(
                AREA,
                "import the plugin module (airflow_wfe.plugin)",
                "ms",
                [i["plugin"] for i in imports],
                goal="≤ 30",
                check=lambda v: v <= 30.0,
            ),
            summarise(
                AREA,
                "100-step YAML workflow compiled to a DAG (load_workflows)",
                "ms",
                compiles,
                goal="≤ 100",
                check=lambda v: v <= 100.0,
                note="first compile in the process, imports of the compiler included (bytecode cached)",
            ),
        ]
    )


if __name__ == "__main__":
    main()
