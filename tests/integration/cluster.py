"""A real Airflow cluster for integration tests: its components on 127.0.0.1, and how to talk to them.

``dag.test()`` runs every task in the test process. The production path differs: a scheduler, an API
server and a dag-processor, LocalExecutor forking one process per task instance (whose ORM access is
blocked), DAG-run hooks firing in the scheduler and tasks talking to the API server's Execution API.
:class:`Cluster` runs those components in a throw-away ``AIRFLOW_HOME`` below ``tmp_path``, each as
its own process group with a log file, on a copy of a DAGs folder, with a SQLite metadata database and
a SQLite wfe store (Airflow 3.3.2 accepts LocalExecutor on SQLite, no error, no warning).

The distributed setup is the same harness with ``database_url`` (Airflow's metadata database, e.g.
PostgreSQL) and ``celery`` (:class:`CeleryBackends`): the scheduler then hands task instances to
CeleryExecutor, and ``celery.workers`` ``airflow celery worker`` processes (components
``celery-worker-1`` ...) take them from the broker. :meth:`Cluster.kill` SIGKILLs one component's
whole process group, as a machine that dies would.

Tests get one through the ``cluster`` fixture of ``tests/integration/conftest.py``, which reads the
module's (or test's) ``cluster`` marker: a scenario folder under ``tests/scenarios`` and the options
of :class:`Cluster`::

    pytestmark = [pytest.mark.integration, pytest.mark.cluster("manual", deadline_s=150.0)]

    def test_something(cluster: Cluster) -> None: ...

Every failure goes through :meth:`Cluster.fail`, which adds the diagnostics: the phases reached and
when, the last ``wfe`` commands, the ledger, each component log's tail, the wfe listener's complaints,
the errors in the task logs and whatever the test added with :meth:`Cluster.add_diagnostics`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow_env import airflow_home_env

from airflow_wfe.cli.components import COMPONENTS as DEMO_COMPONENTS

BIN = Path(sys.executable).parent
#: Every component this harness knows how to start, in start order, with its ``airflow`` arguments
#: (the API server's host, port and worker count are added at start): the same as ``wfe demo``'s.
COMPONENTS = DEMO_COMPONENTS
#: The prefix of the Celery worker components (``celery-worker-1``, ``celery-worker-2``, ...).
CELERY_WORKER = "celery-worker"
#: The states in which Airflow's DAG run is over.
FINISHED = ("success", "failed")
#: How long a component gets to stop on SIGTERM before its process group is killed.
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40
#: How many of the last ``wfe`` commands the diagnostics show.
COMMANDS_SHOWN = 8


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all sockets held open until every port is picked)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tail(path: Path, lines: int = LOG_TAIL_LINES, width: int = 400) -> str:
    """The last ``lines`` lines of ``path``, indented, each cut at ``width`` characters."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"    (cannot read {path}: {exc})"
    return "\n".join(f"    {line[:width]}" for line in text[-lines:]) or "    (empty)"


def parent_pids() -> dict[int, int]:
    """Every live process's parent, from /proc (field 4 of ``stat``, after the command name)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for child, parent in parent_pids().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def render_records(*records: Mapping[str, Any]) -> str:
    """``wfe runs show --json`` records as text: run and steps, one transition a line."""

    def line(t: Mapping[str, Any]) -> str:
        return (
            f"{t.get('at')}  {t['from_state'] or '-'} -> {t['to_state']}"
            f"  [{t['actor']}, try {t['try_number']}]  {t['reason']}"
        )

    out = []
    for record in records:
        out.append(
            f"{record['dag_id']} {record['run_id']}: {record['state']} "
            f"(run_type={record.get('run_type')}, dag_version_id={record.get('dag_version_id')})"
        )
        out.extend(f"    run: {line(t)}" for t in record["transitions"])
        for step in record["steps"]:
            name = f"{step['step_id']}[{step['map_index']}]"
            out.append(f"    {name}: {step['state']}, try {step.get('try_number')}")
            out.extend(f"        {line(t)}" for t in step["transitions"])
        out.extend(f"    compensation: {c}" for c in record.get("compensations", []))
    return "\n".join(out)


@dataclass(frozen=True)
class CeleryBackends:
    """Where CeleryExecutor's messages and results go, and how many workers take tasks.

    ``broker_url`` e.g. ``redis://127.0.0.1:6379/5``; ``result_backend`` e.g.
    ``db+postgresql+psycopg://postgres@127.0.0.1:5432/airflow`` (Celery's database backend);
    ``workers`` ``airflow celery worker`` processes with ``concurrency`` task slots each.
    """

    broker_url: str
    result_backend: str
    workers: int = 2
    concurrency: int = 2

    def worker_names(self) -> list[str]:
        """The components of the workers, in start order."""
        return [f"{CELERY_WORKER}-{number}" for number in range(1, self.workers + 1)]


class Cluster:
    """Airflow's components running on 127.0.0.1 in a throw-away home below ``tmp_path``.

    ``dags`` is copied to ``tmp_path / "dags"`` (:attr:`dags`), which becomes the DAGs folder.
    ``components`` are the ones started (see :data:`COMPONENTS`); without a scheduler nothing runs
    (a triggered run stays queued). ``deadline_s`` is the budget, from after ``airflow db migrate``,
    for every :meth:`wait_until`; :meth:`set_deadline` gives later phases a budget of their own.
    ``ledger`` sets ``WFE_TEST_LEDGER`` to :attr:`ledger`, a file the test DAGs write to and the
    diagnostics show. ``database_url`` is Airflow's metadata database (default: SQLite in the home);
    ``celery`` switches the executor to CeleryExecutor and adds its workers to ``components``.
    ``extra_env`` is applied last, over the harness's own settings.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        dags: Path,
        deadline_s: float,
        components: Iterable[str] = tuple(COMPONENTS),
        extra_env: Mapping[str, str] | None = None,
        ledger: bool = False,
        database_url: str | None = None,
        celery: CeleryBackends | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.components = list(components)
        self.database_url = database_url
        self.celery = celery
        unknown = sorted(set(self.components) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown components {unknown}; known: {sorted(COMPONENTS)}")
        self.home = tmp_path / "airflow-home"
        self.logs = tmp_path / "component-logs"
        self.dags = tmp_path / "dags"
        self.home.mkdir()
        self.logs.mkdir()
        shutil.copytree(dags, self.dags, ignore=shutil.ignore_patterns("__pycache__"))
        self.ledger = tmp_path / "ledger.txt" if ledger else None
        self.deadline_s = deadline_s
        #: No deadline until the components start (``airflow db migrate`` has its own timeout).
        self.deadline = float("inf")
        self.api_port, self.log_port = free_ports(2)
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.env = self._component_env(extra_env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: Components :meth:`kill` ended on purpose (not a failure when they are gone).
        self.killed: set[str] = set()
        self.token: str | None = None
        self.phases: list[str] = []
        #: Every ``wfe`` command run, with its exit code and output (for the diagnostics).
        self.commands: list[str] = []
        self._diagnostics: list[Callable[[], str]] = []

    @classmethod
    @contextlib.contextmanager
    def running(cls, tmp_path: Path, **options: Any) -> Iterator[Cluster]:
        """A started cluster (see the class for ``options``), stopped on the way out."""
        cluster = cls(tmp_path, **options)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()

    def _component_env(self, extra_env: Mapping[str, str]) -> dict[str, str]:
        """A clean environment for the components: nothing Airflow-related inherited from conftest."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "_AIRFLOW")) and not key.startswith("PYTEST")
        }
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                **airflow_home_env(self.home, self.dags),
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            }
        )
        if self.database_url is not None:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.database_url
            if self.database_url.startswith("postgresql+psycopg://"):
                # Airflow derives its async URL with asyncpg otherwise; psycopg 3 does both.
                env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = self.database_url
        if "scheduler" in self.components:
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_port),
                }
            )
        if self.celery is not None:
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CELERY__BROKER_URL": self.celery.broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": self.celery.result_backend,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.celery.concurrency),
                    # As docs/deployment.md sets it up: workers load the listener before forking.
                    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": (
                        "airflow_wfe.adapters.celery_config.CELERY_CONFIG"
                    ),
                }
            )
        if self.ledger is not None:
            env["WFE_TEST_LEDGER"] = str(self.ledger)
        env.update(extra_env)
        return env

    # -- phases and deadlines --------------------------------------------------------------

    def mark(self, phase: str) -> None:
        """Note how long it took to get here (printed, and part of the failure diagnostics)."""
        line = f"{time.monotonic() - self.started:6.1f}s  {phase}"
        self.phases.append(line)
        print(line)

    def set_deadline(self, seconds: float) -> None:
        """From now on, :meth:`wait_until` gives up ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds

    # -- diagnostics -----------------------------------------------------------------------

    def add_diagnostics(self, section: Callable[[], str]) -> None:
        """Have every failure report also show ``section()`` (called when the failure happens)."""
        self._diagnostics.append(section)

    def diagnostics(self) -> str:
        """Phases, `wfe` commands, the ledger, component log tails, listener complaints, task errors."""
        parts = ["--- phases:", *(f"    {line}" for line in self.phases)]
        if self.commands:
            parts.append("--- wfe commands:")
            parts.extend(self.commands[-COMMANDS_SHOWN:])
        if self.ledger is not None:
            parts.append(f"--- ledger {self.ledger}:")
            parts.append(tail(self.ledger))
        for name, proc in self.processes.items():
            code = proc.poll()
            status = "running" if code is None else f"exited with {code}"
            parts.append(f"--- {name} ({status}), last lines of {self.logs / (name + '.log')}:")
            parts.append(tail(self.logs / f"{name}.log"))
        complaints = self.listener_complaints()
        if complaints:
            parts.append("--- wfe listener complaints:")
            parts.extend(f"    {line[:400]}" for line in complaints[:20])
        task_errors = [
            f"    {path.relative_to(self.home)}: {line[:300]}"
            for path in sorted((self.home / "logs").glob("dag_id=*/**/*.log"))
            for line in path.read_text(errors="replace").splitlines()
            if '"level":"error"' in line or '"level":"critical"' in line or "Traceback" in line
        ]
        if task_errors:
            parts.append("--- errors in task logs:")
            parts.extend(task_errors[:20])
        for section in self._diagnostics:
            try:
                parts.append(section())
            except Exception as exc:  # a broken section must not hide the failure itself
                parts.append(f"--- (a diagnostics section failed: {exc!r})")
        return "\n".join(parts)

    def listener_complaints(self) -> list[str]:
        """Lines where the wfe listener says it could not record (components and task logs)."""
        files = [self.logs / f"{name}.log" for name in self.processes]
        files += sorted((self.home / "logs").glob("**/*.log"))
        return [
            f"{path.name}: {line}"
            for path in files
            if path.is_file()
            for line in path.read_text(errors="replace").splitlines()
            if "wfe listener" in line and "could not record" in line
        ]

    def fail(self, message: str) -> None:
        """Fail the test with ``message`` and the diagnostics."""
        pytest.fail(f"{message}\n\n{self.diagnostics()}", pytrace=False)

    def verify(self, check: Callable[[], object], *context: str) -> None:
        """Run ``check``; an AssertionError fails the test with its message, ``context`` and the
        diagnostics (raised outside ``except``, so the report is not doubled by exception chaining).
        """
        problem = None
        try:
            check()
        except AssertionError as exc:
            problem = str(exc) or repr(exc)
        if problem is not None:
            self.fail("\n\n".join([problem, *context]))

    # -- processes -------------------------------------------------------------------------

    def run_cli(self, name: str, *args: str, timeout: float = 120) -> None:
        """Run ``airflow ARGS`` to completion, its output in the log ``name``; it must succeed."""
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            code = subprocess.call(
                [str(BIN / "airflow"), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        if code != 0:
            pytest.fail(
                f"`airflow {' '.join(args)}` exited with {code}:\n{tail(log)}", pytrace=False
            )

    def spawn(self, name: str, *args: str) -> None:
        """Start ``airflow ARGS`` as a process group of its own, its output in the log ``name``."""
        with (self.logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start(self) -> None:
        """``airflow db migrate``, then start the components; the deadline runs from here."""
        self.run_cli("db-migrate", "db", "migrate")
        self.mark("airflow db migrate done")
        self.set_deadline(self.deadline_s)
        for name in self.components:
            args = COMPONENTS[name]
            if name == "api-server":
                args = (*args, "-H", "127.0.0.1", "-p", str(self.api_port), "-w", "1")
            self.spawn(name, *args)
        for name in self.celery.worker_names() if self.celery else []:
            # A node name and pid file each (two workers share the home); no log server to bind.
            self.spawn(
                name,
                *("celery", "worker", "-H", f"{name}@%h", "--skip-serve-logs"),
                *("--pid", str(self.logs / f"{name}.pid"), "--without-gossip", "--without-mingle"),
            )

    def check_alive(self) -> None:
        """Fail when a component has exited (except one :meth:`kill` ended)."""
        for name, proc in self.processes.items():
            if name not in self.killed and proc.poll() is not None:
                self.fail(f"airflow {name} exited early with code {proc.returncode}")

    def kill(self, name: str) -> None:
        """SIGKILL component ``name`` and every process below it (task processes run in process
        groups of their own), as a machine that dies would; no shutdown handler runs."""
        proc = self.processes[name]
        self.killed.add(name)
        below = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.mark(f"{name} SIGKILLed ({len(below)} process(es) below it)")

    def restart(self, name: str) -> None:
        """Start component ``name`` again after :meth:`kill` (same arguments, same log file)."""
        if name not in COMPONENTS:
            raise ValueError(f"{name} cannot be restarted; these can: {sorted(COMPONENTS)}")
        if name not in self.killed or self.processes[name].poll() is None:
            raise ValueError(f"{name} is running: kill it first")
        args = COMPONENTS[name]
        if name == "api-server":
            args = (*args, "-H", "127.0.0.1", "-p", str(self.api_port), "-w", "1")
        self.spawn(name, *args)
        self.killed.discard(name)
        self.mark(f"{name} restarted")

    def component_of(self, pid: int) -> str | None:
        """The component ``pid`` runs under (itself or an ancestor), from /proc's parent links."""
        by_pid = {proc.pid: name for name, proc in self.processes.items()}
        parents = parent_pids()
        while pid > 1:
            if pid in by_pid:
                return by_pid[pid]
            pid = parents.get(pid, 0)
        return None

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL whatever outlives the grace
        (task processes in process groups of their own included)."""
        below = [pid for proc in self.processes.values() for pid in descendants(proc.pid)]
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        grace_end = time.monotonic() + STOP_GRACE_S
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, grace_end - time.monotonic()))
        for proc in self.processes.values():
            # Also reaches children (LocalExecutor workers, uvicorn workers, file-parsing processes)
            # that stayed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for pid in below:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.mark("components stopped")

    def wait_until(self, what: str, probe: Callable[[], Any], interval: float = 0.5) -> Any:
        """Call ``probe`` until it returns something truthy; fail with diagnostics at the deadline.

        Every round first checks that the components are alive; ``probe`` raising OSError (the API
        server not listening yet) counts as a falsy answer.
        """
        last_error: BaseException | None = None
        while time.monotonic() < self.deadline:
            self.check_alive()
            try:
                result = probe()
            except (OSError, urllib.error.URLError) as exc:  # server not listening yet
                last_error, result = exc, None
            if result:
                return result
            time.sleep(interval)
        self.fail(f"timed out waiting for {what} (last error: {last_error!r})")
        return None  # pragma: no cover - fail raises

    # -- wfe -------------------------------------------------------------------------------

    def wfe(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``wfe ARGS`` with the components' environment; the outcome goes to the diagnostics."""
        proc = subprocess.run(
            [str(BIN / "wfe"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.commands.append(
            f"    $ wfe {' '.join(args)}  -> exit {proc.returncode}\n"
            f"      stdout: {proc.stdout.strip()[:1500]}\n"
            f"      stderr: {proc.stderr.strip()[:1500]}"
        )
        return proc

    def show_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """``wfe runs show DAG RUN --json``, through the CLI; it must succeed."""
        args = ("runs", "show", dag_id, run_id, "--json")
        proc = self.wfe(*args)
        if proc.returncode != 0:
            self.fail(
                f"`wfe {' '.join(args)}` exited with {proc.returncode}: {proc.stderr.strip()}"
            )
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def ledger_lines(self) -> list[str]:
        """The lines of the ledger (none while it does not exist)."""
        if self.ledger is None or not self.ledger.is_file():
            return []
        return self.ledger.read_text().splitlines()

    # -- REST ------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The status and (JSON-decoded, else text) body of a request to the API server."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        """GET ``path``; anything but 200 fails the test with diagnostics."""
        status, body = self.request("GET", path)
        if status != 200:
            self.fail(f"GET {path} answered {status}: {body}")
        return body

    def login(self) -> None:
        """Wait for the API server, then get a JWT for the admin SimpleAuthManager generated."""
        self.wait_until("the API server", lambda: self.request("GET", "/api/v2/version")[0] == 200)
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        self.wait_until(f"{passwords.name}", passwords.is_file)
        password = json.loads(passwords.read_text())["admin"]
        status, body = self.request(
            "POST", "/auth/token", {"username": "admin", "password": password}
        )
        if status != 201:
            self.fail(f"POST /auth/token answered {status}: {body}")
        self.token = body["access_token"]
        self.mark("API server up, logged in")

    def trigger(self, dag_id: str) -> str:
        """Wait until the dag-processor serialized ``dag_id``, unpause it if needed, trigger a run."""

        def parsed() -> dict[str, Any] | None:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}")
            return body if status == 200 else None

        dag = self.wait_until(f"the dag-processor to parse {dag_id}", parsed)
        if dag.get("is_paused"):
            status, body = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            if status != 200:
                self.fail(f"unpausing {dag_id} answered {status}: {body}")
        status, body = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None}
        )
        if status != 200:
            self.fail(f"triggering {dag_id} answered {status}: {body}")
        self.mark(f"{dag_id} triggered")
        return str(body["dag_run_id"])

    @staticmethod
    def run_path(dag_id: str, run_id: str) -> str:
        """The REST path of a DAG run."""
        return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def wait_runs_finished(self, runs: Mapping[str, str], what: str) -> dict[str, dict[str, Any]]:
        """Airflow's DAG runs (``{dag_id: run_id}``, by dag id), once every one has a final state."""

        def finished() -> dict[str, dict[str, Any]] | None:
            found = {}
            for dag_id, run_id in runs.items():
                status, body = self.request("GET", self.run_path(dag_id, run_id))
                if status != 200 or body.get("state") not in FINISHED:
                    return None
                found[dag_id] = body
            return found

        return self.wait_until(what, finished, interval=1.0)  # type: ignore[no-any-return]

    def wait_run_finished(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Airflow's DAG run, once it has a final state."""
        return self.wait_runs_finished({dag_id: run_id}, "the DAG run to finish")[dag_id]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Airflow's task instances of the run, by task id (for DAGs without mapped tasks)."""
        body = self.get(f"{self.run_path(dag_id, run_id)}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}
