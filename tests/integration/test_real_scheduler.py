"""The production path: a real scheduler, API server and dag-processor, LocalExecutor forking tasks.

``airflow dags test`` runs everything in one process, where task code may even use Airflow's ORM. In
production every task instance is a forked process whose ORM access is blocked, DAG-run hooks fire in
the scheduler and tasks talk to the API server's Execution API. This test starts those three
components on 127.0.0.1 in a throw-away ``AIRFLOW_HOME``, triggers both example DAGs through the REST
API and checks that the wfe store holds the same histories ``dags test`` records, written by the
expected actors: step transitions of tasks by the forked ``worker``, the run's start and end and the
steps no task reports (upstream_failed) by the ``scheduler``. One exception is tolerated, with a
warning: Airflow 3.3.2 reports a task's success before its success listener runs, so the scheduler's
run-end reconciliation may record the *last* task's success first (see ``_check_success_run``).

Airflow 3.3.2 accepts LocalExecutor on SQLite (no error, no warning), so Airflow's metadata database is
a SQLite file here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_wfe.listeners.mapping import run_end_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
BIN = Path(sys.executable).parent
SUCCESS_DAG = "wfe_example_success"
FAIL_DAG = "wfe_example_retry_fail"

#: Budget for the components to come up and both runs to finish.
RUN_DEADLINE_S = 180.0
#: How long a component gets to stop on SIGTERM before its process group is killed.
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40


def _free_ports(count: int) -> list[int]:
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


def _component_env(home: Path, api_port: int, log_port: int) -> dict[str, str]:
    """A clean environment for the components: nothing Airflow-related inherited from conftest."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "_AIRFLOW")) and not key.startswith("PYTEST")
    }
    plugins = home / "plugins"  # empty: the plugin comes from the installed entry point
    plugins.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-real-scheduler-test-secret-0123456789abcdef",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{home / 'wfe.db'}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        }
    )
    return env


def _tail(path: Path, lines: int = LOG_TAIL_LINES, width: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"    (cannot read {path}: {exc})"
    return "\n".join(f"    {line[:width]}" for line in text[-lines:]) or "    (empty)"


@dataclass
class Cluster:
    """Airflow's components running on 127.0.0.1, and how to talk to them."""

    home: Path
    env: dict[str, str]
    base_url: str
    logs: Path
    deadline: float
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    token: str | None = None
    started: float = field(default_factory=time.monotonic)
    phases: list[str] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        """Note how long it took to get here (printed, and part of the failure diagnostics)."""
        line = f"{time.monotonic() - self.started:6.1f}s  {phase}"
        self.phases.append(line)
        print(line)

    # -- diagnostics -----------------------------------------------------------------------

    def diagnostics(self) -> str:
        """Tails of every component log, the listener's complaints and the task logs' errors."""
        parts = ["--- phases:", *(f"    {line}" for line in self.phases)]
        for name, proc in self.processes.items():
            code = proc.poll()
            status = "running" if code is None else f"exited with {code}"
            parts.append(f"--- {name} ({status}), last lines of {self.logs / (name + '.log')}:")
            parts.append(_tail(self.logs / f"{name}.log"))
        complaints = self.listener_complaints()
        if complaints:
            parts.append("--- wfe listener complaints:")
            parts.extend(f"    {line[:400]}" for line in complaints[:20])
        task_errors = [
            f"    {path.relative_to(self.home)}: {line[:300]}"
            for path in sorted((self.home / "logs").glob("dag_id=*/**/*.log"))
            for line in path.read_text(errors="replace").splitlines()
            if '"level":"error"' in line or "Traceback" in line
        ]
        if task_errors:
            parts.append("--- errors in task logs:")
            parts.extend(task_errors[:20])
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
        pytest.fail(f"{message}\n\n{self.diagnostics()}", pytrace=False)

    # -- processes -------------------------------------------------------------------------

    def run_cli(self, name: str, *args: str, timeout: float = 120) -> None:
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
                f"`airflow {' '.join(args)}` exited with {code}:\n{_tail(log)}", pytrace=False
            )

    def start(self, name: str, *args: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                self.fail(f"airflow {name} exited early with code {proc.returncode}")

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL whatever outlives the grace."""
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        grace_end = time.monotonic() + STOP_GRACE_S
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, grace_end - time.monotonic()))
        for proc in self.processes.values():
            # Also reaches children (LocalExecutor workers, gunicorn/uvicorn workers) that stayed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    # -- REST ------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
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

    def wait_for(self, what: str, probe: Any, interval: float = 0.5) -> Any:
        """Call ``probe`` until it returns something truthy; fail with diagnostics at the deadline."""
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    home = tmp_path / "airflow-home"
    logs = tmp_path / "component-logs"
    home.mkdir()
    logs.mkdir()
    api_port, log_port = _free_ports(2)
    cluster = Cluster(
        home=home,
        env=_component_env(home, api_port, log_port),
        base_url=f"http://127.0.0.1:{api_port}",
        logs=logs,
        deadline=float("inf"),
    )
    cluster.run_cli("db-migrate", "db", "migrate")
    cluster.mark("airflow db migrate done")
    cluster.deadline = time.monotonic() + RUN_DEADLINE_S
    try:
        cluster.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(api_port), "-w", "1")
        cluster.start("dag-processor", "dag-processor")
        # --skip-serve-logs: the log server would otherwise bind 0.0.0.0/[::]:8793.
        cluster.start("scheduler", "scheduler", "--skip-serve-logs")
        yield cluster
    finally:
        cluster.stop()
        cluster.mark("components stopped")


def _login(cluster: Cluster) -> None:
    """Wait for the API server, then get a JWT for the admin SimpleAuthManager generated."""
    cluster.wait_for("the API server", lambda: cluster.request("GET", "/api/v2/version")[0] == 200)
    passwords = cluster.home / "simple_auth_manager_passwords.json.generated"
    cluster.wait_for(f"{passwords.name}", passwords.is_file)
    password = json.loads(passwords.read_text())["admin"]
    status, body = cluster.request(
        "POST", "/auth/token", {"username": "admin", "password": password}
    )
    if status != 201:
        cluster.fail(f"POST /auth/token answered {status}: {body}")
    cluster.token = body["access_token"]
    cluster.mark("API server up, logged in")


def _trigger(cluster: Cluster, dag_id: str) -> str:
    """Wait until the dag-processor serialized ``dag_id``, unpause it if needed, trigger a run."""

    def parsed() -> dict[str, Any] | None:
        status, body = cluster.request("GET", f"/api/v2/dags/{dag_id}")
        return body if status == 200 else None

    dag = cluster.wait_for(f"the dag-processor to parse {dag_id}", parsed)
    if dag.get("is_paused"):
        status, body = cluster.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        if status != 200:
            cluster.fail(f"unpausing {dag_id} answered {status}: {body}")
    status, body = cluster.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    if status != 200:
        cluster.fail(f"triggering {dag_id} answered {status}: {body}")
    cluster.mark(f"{dag_id} triggered")
    return str(body["dag_run_id"])


def _wait_finished(cluster: Cluster, runs: dict[str, str]) -> dict[str, str]:
    """Airflow's final state of each run, once every run has one."""

    def states() -> dict[str, str] | None:
        found = {}
        for dag_id, run_id in runs.items():
            status, body = cluster.request(
                "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
            )
            if status != 200 or body.get("state") not in ("success", "failed"):
                return None
            found[dag_id] = body["state"]
        return found

    return cluster.wait_for("both DAG runs to finish", states, interval=1.0)


def _wfe_show(cluster: Cluster, runs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``wfe runs show DAG RUN --json`` of every run, through the CLI (run concurrently)."""
    procs = {
        dag_id: subprocess.Popen(
            [str(BIN / "wfe"), "runs", "show", dag_id, run_id, "--json"],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for dag_id, run_id in runs.items()
    }
    records = {}
    for dag_id, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            cluster.fail(
                f"`wfe runs show {dag_id} {runs[dag_id]} --json` exited with "
                f"{proc.returncode}: {err.strip()}"
            )
        records[dag_id] = json.loads(out)
    return records


def _render(records: dict[str, dict[str, Any]]) -> str:
    """The recorded histories, one transition a line."""

    def line(t: dict[str, Any]) -> str:
        return (
            f"{t['from_state'] or '-'} -> {t['to_state']}  [{t['actor']}, try {t['try_number']}]"
            f"  {t['reason']}"
        )

    out = []
    for record in records.values():
        out.append(
            f"{record['dag_id']} {record['run_id']}: {record['state']} "
            f"(run_type={record['run_type']}, dag_version_id={record['dag_version_id']})"
        )
        out.extend(f"    run: {line(t)}" for t in record["transitions"])
        for step in record["steps"]:
            name = f"{step['step_id']}[{step['map_index']}]"
            out.append(f"    {name}: {step['state']}, try {step['try_number']}")
            out.extend(f"        {line(t)}" for t in step["transitions"])
    return "\n".join(out)


def _moves(transitions: list[dict[str, Any]]) -> list[tuple[str | None, str, str, int | None]]:
    """(from_state, to_state, actor, try_number) of each transition."""
    return [(t["from_state"], t["to_state"], t["actor"], t["try_number"]) for t in transitions]


def _steps(record: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(step["step_id"], step["map_index"]): step for step in record["steps"]}


def _check_run_header(record: dict[str, Any], end_state: str, end_msg: str) -> None:
    assert record["run_type"] == "manual"
    assert record["state"] == end_state
    assert record["dag_version_id"], "the scheduler knows the DAG version and records it"
    # The scheduler's on_dag_run_running starts the run before any task is queued, and its
    # on_dag_run_success/_failed ends it.
    assert [(t["from_state"], t["to_state"], t["actor"]) for t in record["transitions"]] == [
        (None, "CREATED", "scheduler"),
        ("CREATED", "VALIDATED", "scheduler"),
        ("VALIDATED", "RUNNING", "scheduler"),
        ("RUNNING", end_state, "scheduler"),
    ]
    assert record["transitions"][-1]["reason"] == run_end_reason(end_msg)


def _check_success_run(record: dict[str, Any]) -> None:
    _check_run_header(record, "COMPLETED", "success")
    steps = _steps(record)
    # Each map index of the mapped `score` is a step of its own.
    assert set(steps) == {("extract", -1), ("score", 0), ("score", 1), ("score", 2), ("load", -1)}
    for key, step in steps.items():
        assert (step["state"], step["try_number"]) == ("SUCCEEDED", 1), key
        moves = _moves(step["transitions"])
        if key == ("load", -1) and moves[-1][2] == "scheduler":
            # Airflow 3.3.2 reports SUCCESS to the API server (task_runner.run -> SucceedTask)
            # *before* finalize() fires on_task_instance_success in the task process. The scheduler
            # may end the run in that window, and its run-end reconciliation then records the last
            # task's success before the worker does (the worker's report becomes a no-op). Only the
            # run's last task can lose that race, and only for success (FAILED is sent after the
            # task process exits), so this one transition may legitimately be the scheduler's.
            assert step["transitions"][-1]["reason"] == (
                "reconciled at run end: Airflow reports success"
            )
            warnings.warn(
                "the scheduler's run-end reconciliation recorded load's success before the "
                "task-side listener did (known race in Airflow 3.3.2's task runner)",
                stacklevel=1,
            )
            moves[-1] = (*moves[-1][:2], "worker", moves[-1][3])
        assert moves == [
            (None, "PENDING", "worker", 1),
            ("PENDING", "RUNNING", "worker", 1),
            ("RUNNING", "SUCCEEDED", "worker", 1),
        ], key


def _check_fail_run(record: dict[str, Any]) -> None:
    _check_run_header(record, "FAILED", "task_failure")
    steps = _steps(record)
    assert set(steps) == {("prepare", -1), ("flaky_publish", -1), ("notify", -1)}

    prepare = steps[("prepare", -1)]
    assert prepare["state"] == "SUCCEEDED"
    assert [(t["to_state"], t["actor"]) for t in prepare["transitions"]] == [
        ("PENDING", "worker"),
        ("RUNNING", "worker"),
        ("SUCCEEDED", "worker"),
    ]

    # Both tries ran in forked task processes: the failed first try reported up_for_retry.
    flaky = steps[("flaky_publish", -1)]
    assert (flaky["state"], flaky["try_number"]) == ("FAILED", 2)
    assert _moves(flaky["transitions"]) == [
        (None, "PENDING", "worker", 1),
        ("PENDING", "RUNNING", "worker", 1),
        ("RUNNING", "RETRYING", "worker", 1),
        ("RETRYING", "RUNNING", "worker", 2),
        ("RUNNING", "FAILED", "worker", 2),
    ]
    for transition in (flaky["transitions"][2], flaky["transitions"][4]):
        assert transition["reason"].startswith("ConnectionError: publishing batch-42"), transition

    # No hook reports upstream_failed: the scheduler reconciles it when the run ends.
    notify = steps[("notify", -1)]
    assert notify["state"] == "UPSTREAM_FAILED"
    assert [(t["from_state"], t["to_state"], t["actor"]) for t in notify["transitions"]] == [
        (None, "PENDING", "scheduler"),
        ("PENDING", "UPSTREAM_FAILED", "scheduler"),
    ]


def test_real_scheduler_records_the_same_histories_as_dags_test(cluster: Cluster) -> None:
    _login(cluster)
    runs = {dag_id: _trigger(cluster, dag_id) for dag_id in (SUCCESS_DAG, FAIL_DAG)}
    airflow_states = _wait_finished(cluster, runs)
    if airflow_states != {SUCCESS_DAG: "success", FAIL_DAG: "failed"}:
        cluster.fail(f"Airflow ended the runs unexpectedly: {airflow_states}")
    cluster.mark(f"runs finished in Airflow: {airflow_states}")

    records = _wfe_show(cluster, runs)
    cluster.mark("wfe store read")
    problem = None
    try:
        assert cluster.listener_complaints() == []
        _check_success_run(records[SUCCESS_DAG])
        _check_fail_run(records[FAIL_DAG])
    except AssertionError as exc:
        problem = str(exc)
    if problem is not None:  # outside `except`, so the report is not doubled by exception chaining
        cluster.fail(f"{problem}\n\n--- wfe store:\n{_render(records)}")
