"""Scheduler mode: the production path, plain vs governed vs the OpenLineage provider.

``bench.task_overhead`` runs ``airflow dags test``, where every task runs in one process. Production
runs an API server, a dag-processor and a scheduler whose LocalExecutor forks one process per task
instance (parallelism 8): whatever a listener loads or opens at its first hook is paid again in every
task. This module starts one such cluster per mode (the real-cluster harness of the integration
tests, ``tests/integration/cluster.py``), each with its own Airflow home and SQLite databases:

* plain: ``[wfe] enabled = False``, OpenLineage disabled;
* governed: airflow-wfe on (SQLite store, signed audit trail, its StatsD metrics sent to a UDP port
  this process reads), OpenLineage disabled;
* openlineage: the provider with its defaults and the console transport, airflow-wfe disabled.

Only one cluster works at a time: the others are stopped with SIGSTOP (no CPU, no timer) and resumed
with SIGCONT for their turn. Within each round every DAG runs once in every mode, the modes in a
rotated order, so a slow minute of the machine hits them alike; a figure is the median over the
rounds of the ratio to the plain run of the same round (pairs).

Per run:

* duration: Airflow's own ``end_date - start_date`` of the DAG run;
* CPU, whole machine: ``cpuacct.usage`` (cgroup v1) or ``cpu.stat`` (v2) before the trigger and once
  the run is over and its task processes are gone; every process on the machine is counted, so this
  is only meaningful on a quiet machine;
* CPU, the cluster's processes: user + system time (children reaped included) of every process in
  the sessions of the cluster's components, the same two instants; other work on the machine does not
  count here.

``BENCH_SCHEDULER_STORE=postgres`` keeps LocalExecutor but puts each mode's wfe store in a fresh
PostgreSQL database (``WFE_TEST_PG_URL``'s server, dropped afterwards), with a configured signing
key as a server store needs; the figures are labelled ``scheduler mode (postgres store)``.

``BENCH_SCHEDULER_EXECUTOR=celery`` runs the same modes on CeleryExecutor instead, as deployments
that scale out do: per mode, Airflow's metadata database, Celery's results and the wfe store in
fresh PostgreSQL databases (``WFE_TEST_PG_URL``'s server, dropped afterwards), a Redis database of
the mode's own as broker (``BENCH_REDIS_URL``'s server, databases 6, 7, 8, flushed), and two
``airflow celery worker`` processes with 4 slots each (parallelism 8, as LocalExecutor's). The
figures are labelled ``scheduler mode (celery)``.

After the untimed first run of each mode, LocalExecutor's scheduler is restarted: a deployment's
scheduler starts on a store that already holds its trail (and the audit key that trail's first
event generated), and its warm-up then resolves that key once for all its task processes.

Per task, the governed cluster's listener reports itself (``wfe.listener.duration.<hook>``): under
LocalExecutor each task is the first task of its process, so its ``running`` hook is the first hook of
a fresh process (imports, opening the store) and its ``success`` hook a later one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Result, emit, percentile, quick, runs, skip, summarise

ROOT = Path(__file__).resolve().parent.parent
#: ``local`` (LocalExecutor, SQLite) or ``celery`` (CeleryExecutor, PostgreSQL, Redis).
EXECUTOR = os.environ.get("BENCH_SCHEDULER_EXECUTOR", "local").strip().lower() or "local"
#: Where LocalExecutor's governed cluster keeps the wfe store: ``sqlite`` (the embedded default, a
#: file in the cluster's Airflow home) or ``postgres`` (a fresh database on ``WFE_TEST_PG_URL``'s
#: server). CeleryExecutor always uses PostgreSQL.
STORE = os.environ.get("BENCH_SCHEDULER_STORE", "sqlite").strip().lower() or "sqlite"
if EXECUTOR != "local":
    AREA = f"scheduler mode ({EXECUTOR})"
elif STORE != "sqlite":
    AREA = f"scheduler mode ({STORE} store)"
else:
    AREA = "scheduler mode"
PG_URL = os.environ.get("WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
#: The Redis database of each mode's broker, in mode order (the Celery test uses 5).
REDIS_FIRST_DB = 6
PARALLELISM = 8
#: Per run; a 100-task chain takes ~2–3 minutes on 2 cores.
RUN_DEADLINE_S = 900.0

_DAG = """from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None, tags=["wfe"]) as dag:

    @task
    def noop() -> None:
        return None

    tasks = [noop.override(task_id=f"t{{i:03d}}")() for i in range({count})]
    if "{shape}" == "chain":
        for upstream, downstream in zip(tasks, tasks[1:]):
            upstream >> downstream
    else:
        tasks[0] >> tasks[1:]
"""


def _harness_path() -> None:
    """Put the integration tests' harness (``tests/integration``) on the import path."""
    for folder in (ROOT / "tests", ROOT / "tests" / "integration"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _cluster_class() -> Any:
    """The integration tests' cluster harness (``tests/integration/cluster.py``)."""
    _harness_path()
    from cluster import Cluster  # type: ignore[import-not-found]

    return Cluster


def _timer_sink() -> Any:
    """A socket catching the governed listener's own timers (``tests/integration/timer_sink.py``)."""
    _harness_path()
    from timer_sink import TimerSink  # type: ignore[import-not-found]

    return TimerSink()


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def _pg_databases(*roles: str, suffix: str) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases on ``WFE_TEST_PG_URL``'s server, one per role (its URL), dropped
    afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    names = {role: f"wfe_bench_{role}_{os.getpid()}_{suffix}" for role in roles}
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as connection:
        for name in names.values():
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    base = make_url(PG_URL)
    try:
        yield {
            k: base.set(database=v).render_as_string(hide_password=False) for k, v in names.items()
        }
    finally:
        with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as connection:
            for name in names.values():
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _store_env(url: str) -> dict[str, str]:
    return {
        "AIRFLOW__WFE__STORE_CONN": url,
        # A server store needs a signing key (docs/audit.md); a bench-only HMAC key.
        "AIRFLOW__WFE__AUDIT_SIGNING_KEY": "wfe-bench-only-hmac-key-0123456789",
    }


@contextlib.contextmanager
def _celery_options(mode_index: int) -> Iterator[dict[str, Any]]:
    """The Cluster options of one mode on CeleryExecutor: fresh databases, its own broker db."""
    import redis

    cluster_module = sys.modules[_cluster_class().__module__]
    broker_url = f"{REDIS_URL.rstrip('/')}/{REDIS_FIRST_DB + mode_index}"
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    try:
        with _pg_databases("airflow", "store", suffix=str(mode_index)) as urls:
            yield {
                "database_url": urls["airflow"],
                "celery": cluster_module.CeleryBackends(
                    broker_url=broker_url,
                    result_backend=f"db+{urls['airflow']}",
                    workers=2,
                    concurrency=PARALLELISM // 2,
                ),
                "store_env": _store_env(urls["store"]),
            }
    finally:
        broker.flushdb()
        broker.close()


@contextlib.contextmanager
def _local_options(mode_index: int) -> Iterator[dict[str, Any]]:
    """The Cluster options of one mode on LocalExecutor: Airflow's metadata in the cluster's SQLite
    file; with ``BENCH_SCHEDULER_STORE=postgres`` the wfe store in a fresh PostgreSQL database."""
    if STORE == "sqlite":
        yield {"store_env": {}}
        return
    with _pg_databases("store", suffix=str(mode_index)) as urls:
        yield {"store_env": _store_env(urls["store"])}


def _openlineage_installed() -> bool:
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        return False
    return True


def _modes(udp_port: int, pycache: str) -> dict[str, dict[str, str]]:
    common = {
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__METRICS__STATSD_ON": "False",
        # Bytecode as an installed package has it: a shell with PYTHONDONTWRITEBYTECODE would make
        # every task process compile what it imports (airflow-wfe's store path: ~100 ms a task).
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": pycache,
    }
    modes = {
        "plain": {
            **common,
            "AIRFLOW__WFE__ENABLED": "False",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        },
        "governed": {
            **common,
            "AIRFLOW__WFE__ENABLED": "True",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW__WFE__STATSD_ON": "True",
            "AIRFLOW__WFE__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__WFE__STATSD_PORT": str(udp_port),
        },
    }
    if _openlineage_installed():
        modes["openlineage"] = {
            **common,
            "AIRFLOW__WFE__ENABLED": "False",
            "AIRFLOW__OPENLINEAGE__DISABLED": "False",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "console"}',
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "bench",
        }
    return modes


# -- CPU counters ----------------------------------------------------------------------------------


def machine_cpu_s() -> float | None:
    """CPU seconds used by the whole machine (its cgroup) so far, or None when not readable."""
    v1 = Path("/sys/fs/cgroup/cpuacct/cpuacct.usage")
    with contextlib.suppress(OSError, ValueError):
        return int(v1.read_text()) / 1e9
    v2 = Path("/sys/fs/cgroup/cpu.stat")
    with contextlib.suppress(OSError, ValueError):
        for line in v2.read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    return None


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # the fields after the command name


def sessions_cpu_s(sessions: set[int]) -> tuple[float, int]:
    """CPU seconds (user + system, reaped children included) of every live process in ``sessions``,
    and how many processes that is.

    Task processes change their process group but not their session; a finished one has been reaped
    by its LocalExecutor worker, whose children's times then hold it.
    """
    total, count = 0, 0
    for _pid, _parent, _session, own, reaped in _processes(sessions):
        total += own + reaped
        count += 1
    return total / _TICK, count


def _processes(sessions: Collection[int]) -> Iterator[tuple[int, int, int, int, int]]:
    """``(pid, parent pid, session, own ticks, reaped children's ticks)`` of every live process in
    ``sessions``; ticks are user + system clock ticks."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(entry)
        # [1] parent, [3] session; [11..14] utime, stime, cutime, cstime.
        if fields is None or int(fields[3]) not in sessions:
            continue
        own = int(fields[11]) + int(fields[12])
        reaped = int(fields[13]) + int(fields[14])
        yield int(entry), int(fields[1]), int(fields[3]), own, reaped


def parts_cpu_s(leaders: dict[int, str]) -> dict[str, float]:
    """CPU seconds of the cluster by part: each component's own process and what it reaped, and
    below the scheduler its executor's workers (LocalExecutor's long-lived supervisors) apart from
    the task processes they fork (live ones, and the ones the workers reaped).

    Why: the governed cost per task is a sum over processes of different lifetimes; knowing which
    part grows says whether the task process, its supervisor or the scheduler pays it.
    """
    procs = {
        pid: (parent, session, own, reaped)
        for pid, parent, session, own, reaped in _processes(leaders)
    }
    parts: dict[str, float] = {}

    def add(part: str, ticks: int) -> None:
        parts[part] = parts.get(part, 0.0) + ticks / _TICK

    for pid, (_parent, session, own, reaped) in procs.items():
        name = leaders[session]
        depth, walk = 0, pid
        while walk != session and walk in procs and depth < 8:
            walk, depth = procs[walk][0], depth + 1
        if depth == 0:
            add(name, own)
            add(f"{name}, reaped children", reaped)
        elif name == "scheduler" and depth == 1:
            add("executor workers", own)
            add("task processes", reaped)
        elif name == "scheduler":
            add("task processes", own + reaped)
        else:
            add(f"{name}, children", own + reaped)
    return parts


# -- clusters ----------------------------------------------------------------------------------------


@dataclass
class Run:
    mode: str
    dag_id: str
    duration_s: float
    machine_cpu_s: float | None
    cluster_cpu_s: float
    parts_cpu_s: dict[str, float] = field(default_factory=dict)


@dataclass
class ModeCluster:
    """One mode's cluster, paused (SIGSTOP) between its turns."""

    mode: str
    cluster: Any
    paused: bool = False
    sessions: set[int] = field(default_factory=set)

    @property
    def leaders(self) -> dict[int, str]:
        """Session id (the component's pid) to component name."""
        return {proc.pid: name for name, proc in self.cluster.processes.items()}

    def signal(self, signum: int) -> None:
        for proc in self.cluster.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signum)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _settle(sessions: set[int], baseline: int, limit_s: float = 20.0) -> None:
    """Wait until the run's task processes are gone (the session holds no more than at the start)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end and sessions_cpu_s(sessions)[1] > baseline:
        time.sleep(0.2)


def run_once(mc: ModeCluster, dag_id: str) -> Run:
    """Trigger ``dag_id`` on the mode's cluster and measure the run."""
    cluster = mc.cluster
    cluster.set_deadline(RUN_DEADLINE_S)
    _cpu, baseline = sessions_cpu_s(mc.sessions)
    machine0, (tree0, _) = machine_cpu_s(), sessions_cpu_s(mc.sessions)
    parts0 = parts_cpu_s(mc.leaders)
    status, body = cluster.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    if status != 200:
        cluster.fail(f"triggering {dag_id} answered {status}: {body}")
    run = cluster.wait_run_finished(dag_id, str(body["dag_run_id"]))
    _settle(mc.sessions, baseline)
    machine1, (tree1, _) = machine_cpu_s(), sessions_cpu_s(mc.sessions)
    parts1 = parts_cpu_s(mc.leaders)
    if run["state"] != "success":
        cluster.fail(f"{dag_id} ended {run['state']} in mode {mc.mode}")
    duration = (_parse_time(run["end_date"]) - _parse_time(run["start_date"])).total_seconds()
    return Run(
        mc.mode,
        dag_id,
        duration,
        None if machine0 is None or machine1 is None else machine1 - machine0,
        tree1 - tree0,
        {part: parts1[part] - parts0.get(part, 0.0) for part in parts1},
    )


@contextlib.contextmanager
def clusters(
    base: Path, dags: Path, modes: dict[str, dict[str, str]], dag_ids: list[str]
) -> Iterator[dict[str, ModeCluster]]:
    """One started cluster per mode, each with every DAG parsed and unpaused, all paused."""
    cluster_class = _cluster_class()
    started: dict[str, ModeCluster] = {}
    with contextlib.ExitStack() as backends:
        try:
            for index, (mode, mode_env) in enumerate(modes.items()):
                folder = base / mode.replace(" ", "_")
                folder.mkdir()
                env = dict(mode_env)
                backend = _celery_options if EXECUTOR == "celery" else _local_options
                options = dict(backends.enter_context(backend(index)))
                env.update(options.pop("store_env"))
                cluster = cluster_class(
                    folder, dags=dags, deadline_s=300.0, extra_env=env, **options
                )
                mc = started[mode] = ModeCluster(mode, cluster)
                cluster.start()
                mc.sessions = {proc.pid for proc in cluster.processes.values()}
                cluster.login()
                for dag_id in dag_ids:
                    _await_parsed(cluster, dag_id)
                # One untimed run: caches, the store's schema and the first serialised versions
                # settle.
                run_once(mc, dag_ids[0])
                if EXECUTOR == "local":
                    _restart_scheduler(mc)
                mc.pause()
            yield started
        finally:
            for mc in started.values():
                if mc.paused:
                    mc.resume()
                mc.cluster.stop()


def _restart_scheduler(mc: ModeCluster) -> None:
    """Start the scheduler again, on a store that now holds a trail, as a deployment's scheduler
    starts: its warm-up (before it forks its workers) then finds the audit key the first run
    generated and resolves it once for every task process, instead of each task resolving it."""
    cluster = mc.cluster
    time.sleep(2.0)  # the run end's writes leave the scheduler's writer thread
    cluster.kill("scheduler")
    cluster.restart("scheduler")
    mc.sessions = {proc.pid for proc in cluster.processes.values()}
    time.sleep(5.0)  # the scheduler starts its executor's workers


def _await_parsed(cluster: Any, dag_id: str) -> None:
    def parsed() -> dict[str, Any] | None:
        status, body = cluster.request("GET", f"/api/v2/dags/{dag_id}")
        return body if status == 200 else None

    dag = cluster.wait_until(f"the dag-processor to parse {dag_id}", parsed)
    if dag.get("is_paused"):
        cluster.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


# -- results -------------------------------------------------------------------------------------------


def _within(value: float, *, limit: float) -> bool:
    return value <= limit


def _ratios(measured: list[Run], plain: list[Run], attr: str) -> list[float]:
    pairs = [(getattr(m, attr), getattr(p, attr)) for m, p in zip(measured, plain, strict=True)]
    return [m / p for m, p in pairs if m is not None and p]


def results_for(dag_id: str, count: int, shape: str, by_mode: dict[str, list[Run]]) -> list[Result]:
    plain = by_mode["plain"]
    label = f"{count} tasks, {shape}"
    rows = [
        summarise(
            AREA,
            f"{label}: plain run duration",
            "s",
            [r.duration_s for r in plain],
            note=f"{dag_id}; Airflow's end_date - start_date",
        ),
        summarise(
            AREA,
            f"{label}: plain CPU, cluster processes",
            "s",
            [r.cluster_cpu_s for r in plain],
        ),
    ]
    for mode, measured in by_mode.items():
        if mode == "plain":
            continue
        goal = mode == "governed"
        for attr, what, limit in (
            ("duration_s", "duration", 1.03),
            ("machine_cpu_s", "CPU, whole machine", 1.05),
            ("cluster_cpu_s", "CPU, cluster processes", 1.05),
        ):
            values = _ratios(measured, plain, attr)
            if not values:
                rows.append(skip(AREA, f"{label}: {mode} / plain, {what}", "no cgroup counter"))
                continue
            rows.append(
                summarise(
                    AREA,
                    f"{label}: {mode} / plain, {what}",
                    "×",
                    values,
                    goal=f"≤ {limit}" if goal else "",
                    check=functools.partial(_within, limit=limit) if goal else None,
                )
            )
        extra = [
            (m.cluster_cpu_s - p.cluster_cpu_s) / count * 1000
            for m, p in zip(measured, plain, strict=True)
        ]
        rows.append(
            summarise(
                AREA,
                f"{label}: {mode} CPU per task over plain, cluster processes",
                "ms",
                extra,
            )
        )
        for part in sorted({part for run in measured for part in run.parts_cpu_s}):
            over = [
                (m.parts_cpu_s.get(part, 0.0) - p.parts_cpu_s.get(part, 0.0)) / count * 1000
                for m, p in zip(measured, plain, strict=True)
            ]
            if any(abs(value) >= 0.05 for value in over):
                rows.append(
                    summarise(AREA, f"{label}: {mode} CPU per task over plain, {part}", "ms", over)
                )
    return rows


def timer_results(timings: dict[str, list[float]]) -> list[Result]:
    described = {
        "on_task_instance_running": "first hook of a task process",
        "on_task_instance_success": "later hook of the same process",
        "on_dag_run_running": "scheduler",
        "on_dag_run_success": "scheduler",
    }
    rows = []
    for hook, what in described.items():
        values = timings.get(hook)
        if not values:
            rows.append(skip(AREA, f"listener {hook}", "no timer received"))
            continue
        rows.append(
            summarise(
                AREA,
                f"governed listener {hook} ({what}), median over hooks",
                "ms",
                [statistics.median(values)],
                note=f"{len(values)} hooks; p90 {percentile(values, 0.9):.1f} ms",
            )
        )
    return rows


def _sizes() -> list[tuple[int, str]]:
    """``BENCH_SCHEDULER_DAGS`` (``chain:31,fan-out:100``...), by default 31 tasks in a chain and
    31 and 100 fanned out: a 100-task chain takes ~2 minutes a run on 2 cores, 30 minutes more for
    5 rounds of 3 modes, so it runs only when named."""
    raw = os.environ.get("BENCH_SCHEDULER_DAGS", "chain:31,fan-out:31,fan-out:100")
    sizes = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        shape, _, count = item.partition(":")
        if shape not in ("chain", "fan-out") or not count.isdigit() or int(count) < 2:
            raise SystemExit(
                f"BENCH_SCHEDULER_DAGS: {item!r} is not SHAPE:COUNT (shape chain or fan-out, "
                "count at least 2)"
            )
        sizes.append((int(count), shape))
    return sizes


def main() -> None:
    if EXECUTOR not in ("local", "celery"):
        raise SystemExit(f"BENCH_SCHEDULER_EXECUTOR: {EXECUTOR!r} is not local or celery")
    if STORE not in ("sqlite", "postgres"):
        raise SystemExit(f"BENCH_SCHEDULER_STORE: {STORE!r} is not sqlite or postgres")
    sizes = [(5, "chain"), (5, "fan-out")] if quick() else _sizes()
    parent = os.environ.get("BENCH_HOME") or None
    base = Path(tempfile.mkdtemp(prefix="wfe-bench-scheduler-", dir=parent))
    dags = base / "dags"
    dags.mkdir()
    plan = []
    for count, shape in sizes:
        dag_id = f"sched_{shape.replace('-', '')}_{count}"
        (dags / f"{dag_id}.py").write_text(_DAG.format(dag_id=dag_id, count=count, shape=shape))
        plan.append((dag_id, count, shape))
    sink = _timer_sink()
    modes = _modes(sink.port, str(base / "pycache"))
    runs_by: dict[tuple[str, str], list[Run]] = {}
    try:
        with clusters(base, dags, modes, [d for d, _, _ in plan]) as started:
            sink.take()  # the warm-up runs' timers
            names = list(started)
            for round_index in range(runs()):
                for dag_id, _count, _shape in plan:
                    shift = round_index % len(names)
                    for mode in names[shift:] + names[:shift]:
                        mc = started[mode]
                        mc.resume()
                        try:
                            run = run_once(mc, dag_id)
                        finally:
                            mc.pause()
                        runs_by.setdefault((dag_id, mode), []).append(run)
                        print(
                            f"bench: round {round_index + 1} {dag_id} {mode}: "
                            f"{run.duration_s:.2f} s, cluster CPU {run.cluster_cpu_s:.2f} s "
                            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(run.parts_cpu_s.items())),
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        timings = sink.take()
        sink.close()
    results: list[Result] = []
    for dag_id, count, shape in plan:
        by_mode = {mode: runs_by[(dag_id, mode)] for mode in modes}
        results.extend(results_for(dag_id, count, shape, by_mode))
    results.extend(timer_results(timings))
    if not _openlineage_installed():
        results.append(
            skip(
                AREA,
                "OpenLineage peer",
                "apache-airflow-providers-openlineage is not installed (pip install '.[bench]')",
            )
        )
    emit(results)


if __name__ == "__main__":
    main()
