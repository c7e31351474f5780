"""``make bench``: run every bench module, print the table, write it into docs/performance.md.

Each module runs in a process of its own with a scratch ``AIRFLOW_HOME`` under one temporary folder
that is removed at the end. The table goes between the ``bench:begin``/``bench:end`` markers of
docs/performance.md, with the machine and its load; the prose around it (fixes, before/after, notes)
is left as written. ``BENCH_ONLY=audit_append,statsd_send`` runs a subset (and writes nothing, since
a partial table would replace the full one); ``BENCH_QUICK=1`` also writes nothing.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result, parse_results, quick, runs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
#: In the order of the issues; the task-overhead and scheduler-mode ones take most of the time, so
#: they run last.
MODULES = (
    "listener_cost",
    "parse_cost",
    "audit_append",
    "policy_eval",
    "statsd_send",
    "api_pages",
    "cli_startup",
    "task_overhead",
    "scheduler_mode",
)


def _first(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else platform.processor() or "unknown"
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"MemTotal:\s*(\d+) kB", meminfo.read_text())
        if found:
            memory = f"{int(found.group(1)) / 1024 / 1024:.1f} GiB"
    os_name = platform.platform()
    release = Path("/etc/os-release")
    if release.exists():
        found = re.search(r'PRETTY_NAME="([^"]+)"', release.read_text())
        os_name = f"{found.group(1)} ({platform.release()})" if found else os_name
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    postgres = _first(["postgres", "--version"])
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("RAM", memory),
        ("OS", os_name),
        ("Python", platform.python_version()),
        ("Airflow", package("apache-airflow")),
        ("SQLAlchemy", package("SQLAlchemy")),
        ("SQLite", sqlite3.sqlite_version),
        ("PostgreSQL", postgres),
        ("OpenLineage provider", package("apache-airflow-providers-openlineage")),
    ]


def load() -> str:
    """The load averages (1, 5, 15 min) right now."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit in ("events/s",):
        return f"{value:,.0f}"
    if unit == "×":
        return f"{value:.3f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.4f}"


def table(results: list[Result]) -> str:
    lines = [
        "| area | measure | median | min | max | unit | goal | met | notes |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for r in results:
        met = {True: "yes", False: "**no**", None: "–" if r.goal else ""}[r.met]
        if r.median is None and r.goal:
            met = "skipped"
        lines.append(
            f"| {r.area} | {r.metric} | {_number(r.median, r.unit)} | {_number(r.low, r.unit)} "
            f"| {_number(r.high, r.unit)} | {r.unit} | {r.goal} | {met} | {r.note} |"
        )
    return "\n".join(lines)


def section(results: list[Result], started: str, finished: str, loads: tuple[str, str]) -> str:
    facts = "\n".join(f"| {k} | {v} |" for k, v in machine())
    return (
        f"{BEGIN}\n"
        f"Measured by `make bench` from {started} to {finished} (UTC), "
        f"{runs()} runs per figure (median, min, max over the runs).\n\n"
        f"| machine | |\n|---|---|\n{facts}\n"
        f"| load average (1/5/15 min) at start | {loads[0]} |\n"
        f"| load average (1/5/15 min) at end | {loads[1]} |\n\n"
        f"{table(results)}\n"
        f"{END}"
    )


def write_doc(text: str) -> None:
    if DOC.exists() and BEGIN in (current := DOC.read_text()) and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(head + text + tail)
    else:
        DOC.write_text(f"# Performance\n\n{text}\n")


def main() -> int:
    only = [m for m in os.environ.get("BENCH_ONLY", "").split(",") if m]
    modules = [m for m in MODULES if not only or m in only]
    scratch = Path(tempfile.mkdtemp(prefix="wfe-bench-"))
    env = {**os.environ, "BENCH_HOME": str(scratch), "PYTHONPATH": str(ROOT)}
    started, start_load = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), load()
    results: list[Result] = []
    failed = []
    try:
        for module in modules:
            begun = time.perf_counter()
            print(f"bench: {module} ...", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, "-m", f"bench.{module}"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            found = parse_results(done.stdout)
            results.extend(found)
            if done.returncode != 0 or not found:
                failed.append(module)
                print(done.stderr[-3000:], file=sys.stderr)
            print(
                f"bench: {module} done in {time.perf_counter() - begun:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    finished, end_load = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), load()
    text = section(results, started, finished, (start_load, end_load))
    print(text)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if quick() or only:
        print("bench: quick or partial run: docs/performance.md left as it is", file=sys.stderr)
        return 0
    write_doc(text)
    print(f"bench: table written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
