"""A compensation whose process is SIGKILLed mid-way is retried, and applied exactly once.

``dag.test()`` runs every task in the test process, so a task that kills its own process would kill
the test. This test therefore runs the production path, as ``test_real_scheduler.py`` does (its
approach is copied here, not imported): api-server, dag-processor and scheduler with LocalExecutor on
127.0.0.1 in a throw-away ``AIRFLOW_HOME``; the DAGs folder is a copy of ``tests/dags_killed``.

The DAG (``wfe_t_saga_killed_compensation``): ``charge`` succeeds, ``ship`` fails, so
``compensate__charge`` runs; on try 1 its function applies the refund (ledger line ``applied <key>``)
and SIGKILLs its own task process before the saga records COMPENSATED. The LocalExecutor's
supervisor sees the task process die and, retries being left, reports it ``up_for_retry``; try 2
calls the function again with the same idempotency key, which finds the refund applied, and the saga
records COMPENSATED. Checked through ``wfe runs show --json``, the ledger and Airflow's REST API.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
KILLED_DAGS = REPO / "tests" / "dags_killed"
BIN = Path(sys.executable).parent
DAG_ID = "wfe_t_saga_killed_compensation"
COMPENSATION_TASK = "compensate__charge"

#: Budget for the components to come up and the run (with its killed try) to finish.
RUN_DEADLINE_S = 200.0
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


def _component_env(
    home: Path, dags: Path, ledger: Path, api_port: int, log_port: int
) -> dict[str, str]:
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
            "WFE_TEST_LEDGER": str(ledger),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-killed-compensation-test-secret-0123456789",
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
    ledger: Path
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
        """Phases, the ledger, tails of every component log, the listener's complaints, task errors."""
        parts = ["--- phases:", *(f"    {line}" for line in self.phases)]
        parts.append(f"--- ledger {self.ledger}:")
        parts.append(_tail(self.ledger))
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
            if '"level":"error"' in line or '"level":"critical"' in line or "Traceback" in line
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

    def get(self, path: str) -> Any:
        """GET ``path``; anything but 200 fails the test with diagnostics."""
        status, body = self.request("GET", path)
        if status != 200:
            self.fail(f"GET {path} answered {status}: {body}")
        return body

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
    dags = tmp_path / "dags"
    home.mkdir()
    logs.mkdir()
    shutil.copytree(KILLED_DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    ledger = tmp_path / "ledger.txt"
    api_port, log_port = _free_ports(2)
    cluster = Cluster(
        home=home,
        env=_component_env(home, dags, ledger, api_port, log_port),
        base_url=f"http://127.0.0.1:{api_port}",
        logs=logs,
        ledger=ledger,
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


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def _wait_finished(cluster: Cluster, dag_id: str, run_id: str) -> str:
    """Airflow's final state of the run, once it has one."""

    def state() -> str | None:
        status, body = cluster.request("GET", _run_path(dag_id, run_id))
        if status != 200 or body.get("state") not in ("success", "failed"):
            return None
        return str(body["state"])

    return cluster.wait_for("the DAG run to finish", state, interval=1.0)


def _wfe_show(cluster: Cluster, dag_id: str, run_id: str) -> dict[str, Any]:
    """``wfe runs show DAG RUN --json``, through the CLI."""
    proc = subprocess.run(
        [str(BIN / "wfe"), "runs", "show", dag_id, run_id, "--json"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        cluster.fail(
            f"`wfe runs show {dag_id} {run_id} --json` exited with "
            f"{proc.returncode}: {proc.stderr.strip()}"
        )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _render(record: dict[str, Any]) -> str:
    """The recorded history, one transition a line."""

    def line(t: dict[str, Any]) -> str:
        return (
            f"{t['from_state'] or '-'} -> {t['to_state']}  [{t['actor']}, try {t['try_number']}]"
            f"  {t['reason']}"
        )

    out = [f"{record['dag_id']} {record['run_id']}: {record['state']}"]
    out.extend(f"    run: {line(t)}" for t in record["transitions"])
    for step in record["steps"]:
        out.append(f"    {step['step_id']}[{step['map_index']}]: {step['state']}")
        out.extend(f"        {line(t)}" for t in step["transitions"])
    return "\n".join(out)


def _ledger_lines(cluster: Cluster) -> list[str]:
    if not cluster.ledger.is_file():
        return []
    return cluster.ledger.read_text().splitlines()


def _attempts(lines: list[str]) -> list[dict[str, str]]:
    """``attempt <key> try=N pid=P at=T`` lines as dicts (key, try, pid, at)."""
    found = []
    for line in lines:
        if line.startswith("attempt "):
            _, key, *pairs = line.split()
            found.append({"key": key, **dict(pair.split("=", 1) for pair in pairs)})
    return found


def _seconds(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _timings(attempts: list[dict[str, str]], tries: list[dict[str, Any]]) -> list[str]:
    """How long Airflow took to notice the kill and to start the retry (for the report)."""
    by_try = {int(t["try_number"]): t for t in tries}
    killed_at = float(attempts[0]["at"]) if attempts else None
    first_end = _seconds(by_try.get(1, {}).get("end_date"))
    second_start = _seconds(by_try.get(2, {}).get("start_date"))
    second_end = _seconds(by_try.get(2, {}).get("end_date"))
    notes = []
    if killed_at is not None and first_end is not None:
        notes.append(f"kill -> try 1 ended ({by_try[1]['state']}): {first_end - killed_at:.2f}s")
    if first_end is not None and second_start is not None:
        notes.append(f"try 1 ended -> try 2 started: {second_start - first_end:.2f}s")
    if killed_at is not None and second_end is not None:
        notes.append(f"kill -> try 2 ended ({by_try[2]['state']}): {second_end - killed_at:.2f}s")
    return notes


def _who_noticed(cluster: Cluster) -> str:
    """Which Airflow component put the killed try up for retry (informational, not asserted).

    In Airflow 3.3.2 the supervisor computes ``up_for_retry`` for a task process killed by a signal
    but does not send it (UP_FOR_RETRY is among the states it expects the task itself to report), so
    the task instance stays ``running`` until the scheduler sees the executor's event and treats
    the mismatch as a task killed externally. A later Airflow may report it from the supervisor.
    """
    log = cluster.logs / "scheduler.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    mismatch = any(
        COMPENSATION_TASK in line and "but the task instance's state attribute is" in line
        for line in text.splitlines()
    )
    if mismatch:
        return "retry set by the scheduler (executor/state mismatch: task killed externally)"
    return "retry set without a scheduler state mismatch (supervisor reported up_for_retry?)"


def _check(
    cluster: Cluster,
    airflow_state: str,
    record: dict[str, Any],
    ti: dict[str, Any],
    tries: list[dict[str, Any]],
    lines: list[str],
) -> None:
    assert cluster.listener_complaints() == []
    assert airflow_state == "failed", "Airflow's verdict on the forward steps stands"

    # The run: FAILED (ship failed), COMPENSATING, then COMPENSATED after the killed try's retry.
    assert record["state"] == "COMPENSATED"
    assert [t["to_state"] for t in record["transitions"]][-3:] == [
        "FAILED",
        "COMPENSATING",
        "COMPENSATED",
    ]
    assert record["transitions"][-1]["reason"] == "all 1 compensation(s) succeeded"

    # The step: one COMPENSATING (try 1 started it, the SIGKILL left it there), COMPENSATED by try 2.
    steps = {(s["step_id"], s["map_index"]): s for s in record["steps"]}
    assert steps[("ship", -1)]["state"] == "FAILED"
    charge = steps[("charge", -1)]
    assert charge["state"] == "COMPENSATED"
    moves = [(t["to_state"], t["try_number"]) for t in charge["transitions"]]
    assert [state for state, _ in moves][-3:] == ["SUCCEEDED", "COMPENSATING", "COMPENSATED"]
    assert [state for state, _ in moves].count("COMPENSATING") == 1
    assert moves[-2:] == [("COMPENSATING", 1), ("COMPENSATED", 2)]

    # The effect: both tries called the function with the same key, it was applied once.
    applied = [line for line in lines if line.startswith("applied ")]
    assert len(applied) == 1, lines
    attempts = _attempts(lines)
    assert [a["try"] for a in attempts] == ["1", "2"], lines
    assert {a["key"] for a in attempts} == {applied[0].split()[1]}, lines
    assert attempts[0]["pid"] != attempts[1]["pid"], "try 2 ran in a new task process"

    # Airflow: the compensation task retried after the kill and succeeded on try 2. Try 1 was
    # up_for_retry, but Airflow 3.3.2 archives a try whose state is not a finished one as "failed"
    # (TaskInstanceHistory.record_ti), so that is what its history shows.
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")], tries


def test_a_killed_compensation_is_retried_and_applied_once(cluster: Cluster) -> None:
    _login(cluster)
    run_id = _trigger(cluster, DAG_ID)
    airflow_state = _wait_finished(cluster, DAG_ID, run_id)
    cluster.mark(f"run finished in Airflow: {airflow_state}")

    ti_path = f"{_run_path(DAG_ID, run_id)}/taskInstances/{COMPENSATION_TASK}"
    ti = cluster.get(ti_path)
    tries = sorted(cluster.get(f"{ti_path}/tries")["task_instances"], key=lambda t: t["try_number"])
    record = _wfe_show(cluster, DAG_ID, run_id)
    lines = _ledger_lines(cluster)
    for note in [*_timings(_attempts(lines), tries), _who_noticed(cluster)]:
        cluster.mark(note)

    problem = None
    try:
        _check(cluster, airflow_state, record, ti, tries, lines)
    except AssertionError as exc:
        problem = str(exc)
    if problem is not None:  # outside `except`, so the report is not doubled by exception chaining
        tries_text = "\n".join(
            f"    try {t['try_number']}: {t['state']} {t.get('start_date')} -> {t.get('end_date')}"
            for t in tries
        )
        cluster.fail(
            f"{problem}\n\n--- wfe store:\n{_render(record)}\n\n"
            f"--- Airflow tries of {COMPENSATION_TASK}:\n{tries_text}"
        )
