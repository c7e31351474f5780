"""``wfe compensate``: a COMPLETED run undone by hand, through its saga tasks and a real scheduler.

``wfe compensate`` records the request (run → COMPENSATING, actor ``user:<os user>``), then clears the
run's saga task instances the way Airflow's "clear" does, so Airflow's scheduler runs them again;
``saga__begin`` sees the manual request and compensates every step that succeeded. ``dag.test()``
has no scheduler to re-run cleared tasks, so this test runs the production path, as
``test_real_scheduler.py`` and ``test_saga_killed_compensation.py`` do (their approach is copied
here, not imported): api-server, dag-processor and scheduler with LocalExecutor on 127.0.0.1 in a
throw-away ``AIRFLOW_HOME``; the DAGs folder is a copy of ``tests/dags_manual``.

The DAG (``wfe_t_saga_manual_compensation``): ``a`` → ``b``, both succeed and both declare a
compensation that writes ``undo <step> <idempotency_key>`` to a ledger. The run COMPLETES; a plain
``wfe compensate`` is refused (it would undo a successful run) and changes nothing; with ``--force``
the scheduler re-runs ``saga__begin``, ``compensate__b``, ``compensate__a`` and ``saga__end``, and the
run ends COMPENSATED; a second request is refused. Checked through ``wfe runs show --json``, the
ledger and Airflow's REST API.
"""

from __future__ import annotations

import contextlib
import getpass
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

from airflow_wfe.saga.runtime import idempotency_key

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
MANUAL_DAGS = REPO / "tests" / "dags_manual"
BIN = Path(sys.executable).parent
DAG_ID = "wfe_t_saga_manual_compensation"
SAGA_TASKS = ["compensate__a", "compensate__b", "saga__begin", "saga__end"]
REASON = "rollback release 42"

#: Budget for the components to come up and the forward run to finish.
RUN_DEADLINE_S = 150.0
#: Budget for the scheduler to re-run the cleared saga tasks after `wfe compensate --force`.
COMPENSATION_DEADLINE_S = 120.0
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
            "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-manual-compensation-test-secret-0123456789",
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
    #: Every `wfe` command the test ran, with its exit code and output (for the diagnostics).
    commands: list[str] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        """Note how long it took to get here (printed, and part of the failure diagnostics)."""
        line = f"{time.monotonic() - self.started:6.1f}s  {phase}"
        self.phases.append(line)
        print(line)

    # -- diagnostics -----------------------------------------------------------------------

    def diagnostics(self) -> str:
        """Phases, `wfe` commands, the ledger, component log tails, listener complaints, task errors."""
        parts = ["--- phases:", *(f"    {line}" for line in self.phases)]
        if self.commands:
            parts.append("--- wfe commands:")
            parts.extend(self.commands[-8:])
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

    def wfe(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``wfe ARGS`` with the components' environment; the outcome goes to the diagnostics."""
        proc = subprocess.run(
            [str(BIN / "wfe"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.commands.append(
            f"    $ wfe {' '.join(args)}  -> exit {proc.returncode}\n"
            f"      stdout: {proc.stdout.strip()[:1500]}\n"
            f"      stderr: {proc.stderr.strip()[:1500]}"
        )
        return proc

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
    shutil.copytree(MANUAL_DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
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


def _dag_run(cluster: Cluster, run_id: str) -> dict[str, Any]:
    return cluster.get(_run_path(DAG_ID, run_id))  # type: ignore[no-any-return]


def _task_instances(cluster: Cluster, run_id: str) -> dict[str, dict[str, Any]]:
    """Airflow's task instances of the run, by task id (no mapped tasks in this DAG)."""
    body = cluster.get(f"{_run_path(DAG_ID, run_id)}/taskInstances")
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def _ti_summary(tis: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{tid}={ti['state']}/try{ti['try_number']}" for tid, ti in sorted(tis.items())
    )


def _show(cluster: Cluster, run_id: str) -> dict[str, Any]:
    """``wfe runs show DAG RUN --json``, through the CLI."""
    proc = cluster.wfe("runs", "show", DAG_ID, run_id, "--json")
    if proc.returncode != 0:
        cluster.fail(f"`wfe runs show {DAG_ID} {run_id} --json` exited with {proc.returncode}")
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
    out.extend(f"    compensation: {c}" for c in record.get("compensations", []))
    return "\n".join(out)


def _ledger_lines(cluster: Cluster) -> list[str]:
    if not cluster.ledger.is_file():
        return []
    return cluster.ledger.read_text().splitlines()


def _checked(cluster: Cluster, record: dict[str, Any] | None, check: Any, *args: Any) -> None:
    """Run ``check(*args)``; an AssertionError fails the test with the store and diagnostics."""
    problem = None
    try:
        check(*args)
    except AssertionError as exc:
        problem = str(exc) or repr(exc)
    if problem is not None:  # outside `except`, so the report is not doubled by exception chaining
        store = _render(record) if record is not None else "(not read)"
        cluster.fail(f"{problem}\n\n--- wfe store:\n{store}")


def _check_completed(record: dict[str, Any], tis: dict[str, dict[str, Any]]) -> None:
    assert record["state"] == "COMPLETED", record["state"]
    assert [t["to_state"] for t in record["transitions"]][-1] == "COMPLETED"
    steps = {(s["step_id"], s["map_index"]): s["state"] for s in record["steps"]}
    assert steps == {("a", -1): "SUCCEEDED", ("b", -1): "SUCCEEDED"}, steps
    assert record["compensations"] == []
    # Nothing failed: the saga tasks ran once and skipped.
    assert {
        tid: (tis[tid]["state"], tis[tid]["try_number"]) for tid in SAGA_TASKS
    } == dict.fromkeys(SAGA_TASKS, ("skipped", 1)), _ti_summary(tis)


def _check_refused(
    refused: subprocess.CompletedProcess[str],
    before: dict[str, Any],
    after: dict[str, Any],
    tis_before: dict[str, dict[str, Any]],
    tis_after: dict[str, dict[str, Any]],
    lines: list[str],
) -> None:
    assert refused.returncode == 1, refused.returncode
    assert "--force" in refused.stderr, refused.stderr
    assert "COMPLETED" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stdout == "", refused.stdout
    assert after["state"] == "COMPLETED"
    assert after["transitions"] == before["transitions"], "the refusal wrote a transition"
    assert after["steps"] == before["steps"], "the refusal touched a step"
    # Nor did it clear anything in Airflow.
    assert {tid: (ti["state"], ti["try_number"]) for tid, ti in tis_after.items()} == {
        tid: (ti["state"], ti["try_number"]) for tid, ti in tis_before.items()
    }, _ti_summary(tis_after)
    assert [line for line in lines if line.startswith("undo ")] == [], lines


def _json_document(stdout: str) -> tuple[Any, str | None]:
    """The JSON document ``--json`` printed, and what else stdout held (None when nothing).

    Whatever precedes the document (log lines) is reported rather than fatal here, so the scenario
    goes on; the test fails on it at the end.
    """
    with contextlib.suppress(ValueError):
        return json.loads(stdout), None
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line in ("{", "[")), None)
    assert start is not None, f"no JSON document on stdout: {stdout!r}"
    return json.loads("\n".join(lines[start:])), "\n".join(lines[:start])


def _check_request(
    requested: subprocess.CompletedProcess[str], run_id: str, extra: list[str]
) -> dict[str, Any]:
    assert requested.returncode == 0, (requested.returncode, requested.stderr)
    outcome, noise = _json_document(requested.stdout)
    if noise is not None:
        extra.append(noise)
    assert outcome["dag_id"] == DAG_ID
    assert outcome["run_id"] == run_id
    assert outcome["state"] == "COMPENSATING"
    assert outcome["cleared"] == SAGA_TASKS, outcome["cleared"]
    assert outcome["actor"] == f"user:{getpass.getuser()}", outcome["actor"]
    assert outcome["reason"].startswith("manual compensation requested"), outcome["reason"]
    assert "--force" in outcome["reason"]
    assert REASON in outcome["reason"]
    return outcome  # type: ignore[no-any-return]


def _check_compensated(
    record: dict[str, Any],
    outcome: dict[str, Any],
    run_id: str,
    airflow_run: dict[str, Any],
    tis: dict[str, dict[str, Any]],
    lines: list[str],
    complaints: list[str],
) -> None:
    assert complaints == [], complaints
    assert record["state"] == "COMPENSATED", record["state"]

    # The run: COMPLETED (Airflow's verdict), the person's request, the saga's conclusion.
    transitions = record["transitions"]
    assert [t["to_state"] for t in transitions][-3:] == [
        "COMPLETED",
        "COMPENSATING",
        "COMPENSATED",
    ], [t["to_state"] for t in transitions]
    assert "FAILED" not in [t["to_state"] for t in transitions], "the run never failed"
    request, conclusion = transitions[-2], transitions[-1]
    assert request["from_state"] == "COMPLETED"
    assert request["actor"] == outcome["actor"]
    assert request["actor"].startswith("user:")
    assert request["reason"] == outcome["reason"]
    assert request["reason"].startswith("manual compensation requested")
    assert REASON in request["reason"]
    assert "--force" in request["reason"]
    # Recorded before the clear (which re-queues Airflow's run), so saga__begin finds the request.
    requested_at = datetime.fromisoformat(request["at"])
    queued_at = datetime.fromisoformat(airflow_run["queued_at"])
    assert requested_at <= queued_at, f"request {request['at']} after the clear {queued_at}"
    assert conclusion["actor"] == "saga"
    assert conclusion["reason"] == "all 2 compensation(s) succeeded", conclusion["reason"]

    # The steps: both undone by the saga, b before a.
    steps = {(s["step_id"], s["map_index"]): s for s in record["steps"]}
    assert set(steps) == {("a", -1), ("b", -1)}, sorted(steps)
    for step_id in ("a", "b"):
        step = steps[(step_id, -1)]
        assert step["state"] == "COMPENSATED", (step_id, step["state"])
        moves = [t["to_state"] for t in step["transitions"]]
        assert moves[-3:] == ["SUCCEEDED", "COMPENSATING", "COMPENSATED"], (step_id, moves)
        assert moves.count("COMPENSATING") == 1, (step_id, moves)
        assert [t["actor"] for t in step["transitions"][-2:]] == ["saga", "saga"]
    compensations = record["compensations"]
    assert [(c["order"], c["step_id"], c["outcome"]) for c in compensations] == [
        (1, "b", "COMPENSATED"),
        (2, "a", "COMPENSATED"),
    ], compensations

    # The effects: the forward steps ran once (they were not cleared), each undo once, b first,
    # with the idempotency key of its step instance.
    key_a = idempotency_key(DAG_ID, run_id, "a", -1)
    key_b = idempotency_key(DAG_ID, run_id, "b", -1)
    assert lines == ["do a", "do b", f"undo b {key_b}", f"undo a {key_a}"], lines

    # Airflow: the forward tasks kept their one try, the saga tasks ran a second one and succeeded,
    # and the run finished again with its forward verdict (success).
    assert (tis["a"]["state"], tis["a"]["try_number"]) == ("success", 1), _ti_summary(tis)
    assert (tis["b"]["state"], tis["b"]["try_number"]) == ("success", 1), _ti_summary(tis)
    assert {
        tid: (tis[tid]["state"], tis[tid]["try_number"]) for tid in SAGA_TASKS
    } == dict.fromkeys(SAGA_TASKS, ("success", 2)), _ti_summary(tis)
    assert airflow_run["state"] == "success", airflow_run["state"]


def _check_second_refused(again: subprocess.CompletedProcess[str], record: dict[str, Any]) -> None:
    assert again.returncode == 1, again.returncode
    assert "is COMPENSATED" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    assert record["state"] == "COMPENSATED"


def _check_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["transitions"] == before["transitions"], "the refused request wrote a transition"
    assert after["steps"] == before["steps"], "the refused request touched a step"


def _check_unknown(unknown: subprocess.CompletedProcess[str]) -> None:
    assert unknown.returncode == 1, unknown.returncode
    assert "no governed run" in unknown.stderr, unknown.stderr
    assert "Traceback" not in unknown.stderr


def _wait_for_run(cluster: Cluster, run_id: str) -> dict[str, Any]:
    """Airflow's run, once it has a final state."""

    def finished() -> dict[str, Any] | None:
        status, body = cluster.request("GET", _run_path(DAG_ID, run_id))
        if status != 200 or body.get("state") not in ("success", "failed"):
            return None
        return body  # type: ignore[no-any-return]

    return cluster.wait_for("the DAG run to finish", finished, interval=1.0)  # type: ignore[no-any-return]


def _wait_for_compensation(cluster: Cluster, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Airflow's run finished again and the wfe run concluded (or the deadline is reached)."""
    seen: list[str] = []

    def concluded() -> tuple[dict[str, Any], dict[str, Any]] | None:
        status, airflow_run = cluster.request("GET", _run_path(DAG_ID, run_id))
        if status != 200:
            return None
        if not seen or seen[-1] != f"airflow {airflow_run.get('state')}":
            seen.append(f"airflow {airflow_run.get('state')}")
            cluster.mark(f"Airflow run state: {airflow_run.get('state')}")
        if airflow_run.get("state") not in ("success", "failed"):
            return None
        record = _show(cluster, run_id)
        if record["state"] in ("COMPENSATED", "COMPENSATION_FAILED"):
            return airflow_run, record
        return None

    return cluster.wait_for(  # type: ignore[no-any-return]
        "the scheduler to re-run the saga and the wfe run to conclude", concluded, interval=1.0
    )


def test_a_completed_run_is_compensated_by_hand_only_with_force(cluster: Cluster) -> None:
    _login(cluster)
    run_id = _trigger(cluster, DAG_ID)
    first = _wait_for_run(cluster, run_id)
    cluster.mark(f"run finished in Airflow: {first['state']}")
    if first["state"] != "success":
        cluster.fail(f"the forward run ended {first['state']}, not success")

    # The run COMPLETED; the saga tasks skipped.
    completed = _show(cluster, run_id)
    tis_completed = _task_instances(cluster, run_id)
    cluster.mark(f"wfe: {completed['state']}; Airflow: {_ti_summary(tis_completed)}")
    _checked(cluster, completed, _check_completed, completed, tis_completed)

    # A run no one recorded: refused, before anything is looked up in Airflow.
    unknown = cluster.wfe("compensate", DAG_ID, "no-such-run")
    _checked(cluster, None, _check_unknown, unknown)

    # Without --force: refused, nothing changes (neither the store nor Airflow).
    refused = cluster.wfe("compensate", DAG_ID, run_id)
    cluster.mark(f"wfe compensate (no --force): exit {refused.returncode}")
    unchanged = _show(cluster, run_id)
    tis_unchanged = _task_instances(cluster, run_id)
    _checked(
        cluster,
        unchanged,
        _check_refused,
        refused,
        completed,
        unchanged,
        tis_completed,
        tis_unchanged,
        _ledger_lines(cluster),
    )

    # With --force: recorded, the saga tasks cleared; the scheduler takes over.
    requested = cluster.wfe("compensate", DAG_ID, run_id, "--force", "--reason", REASON, "--json")
    requested_at = time.monotonic()
    cluster.mark(f"wfe compensate --force: exit {requested.returncode}")
    outcome: dict[str, Any] = {}
    noise: list[str] = []  # anything `--json` printed on stdout besides the JSON document
    _checked(cluster, None, lambda: outcome.update(_check_request(requested, run_id, noise)))
    if noise:
        cluster.mark(f"`wfe compensate --json` stdout held more than JSON: {noise[0][:300]!r}")
    cleared_run = _dag_run(cluster, run_id)
    cluster.mark(f"right after the request, Airflow's run is {cleared_run['state']}")

    cluster.deadline = time.monotonic() + COMPENSATION_DEADLINE_S
    airflow_run, record = _wait_for_compensation(cluster, run_id)
    cluster.mark(
        f"compensation concluded {record['state']} {time.monotonic() - requested_at:.1f}s "
        f"after the request; Airflow's run {airflow_run['state']} (queued again at "
        f"{airflow_run.get('queued_at')}, start_date now {airflow_run.get('start_date')})"
    )
    tis = _task_instances(cluster, run_id)
    cluster.mark(f"Airflow task instances: {_ti_summary(tis)}")
    _checked(
        cluster,
        record,
        _check_compensated,
        record,
        outcome,
        run_id,
        airflow_run,
        tis,
        _ledger_lines(cluster),
        cluster.listener_complaints(),
    )

    # Compensated once is enough: a second request is refused, even with --force.
    again = cluster.wfe("compensate", DAG_ID, run_id, "--force")
    cluster.mark(f"second wfe compensate --force: exit {again.returncode}")
    final = _show(cluster, run_id)
    _checked(cluster, final, _check_second_refused, again, final)
    _checked(cluster, final, lambda: _check_unchanged(record, final))

    # `--json` is for programs: its stdout must be the JSON document alone (checked last, so a
    # stray log line does not hide how the rest of the scenario went).
    if noise:
        cluster.fail(
            "`wfe compensate --json` printed more than the JSON document on stdout "
            f"(log output belongs on stderr):\n{noise[0][:1500]}"
        )
