"""A branch fails while a parallel branch still runs: the saga waits for it, then undoes it too.

``dag.test()`` runs one task at a time, so it cannot show what happens when a governed saga's step
fails while another branch of the run is still in flight. This test runs the production path, as
``test_saga_killed_compensation.py`` does (its approach is copied here, not imported): api-server,
dag-processor and scheduler with LocalExecutor on 127.0.0.1 in a throw-away ``AIRFLOW_HOME``, with
enough parallelism for both branches to run at once in their own task processes; the DAGs folder is a
copy of ``tests/dags_inflight``.

The DAG (``wfe_t_saga_inflight_branch``): ``provision`` → (``slow_branch``, ``fast_fail``). The
branches meet in the ledger: ``fast_fail`` fails once ``slow_branch`` has started, and
``slow_branch`` ends only after the ledger and Airflow both show ``fast_fail`` failed (plus 2 s).
Expected: ``saga__begin`` (downstream of every forward task) starts only after ``slow_branch``
ended; ``slow_branch`` succeeded, so it is undone, then ``provision``; ``fast_fail`` is not. Checked
through the ledger's order and timestamps, Airflow's REST API (states and start/end dates) and
``wfe runs show --json``. Only orderings of recorded timestamps are asserted, never durations.
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

from airflow_wfe.saga.runtime import idempotency_key

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
INFLIGHT_DAGS = REPO / "tests" / "dags_inflight"
BIN = Path(sys.executable).parent
DAG_ID = "wfe_t_saga_inflight_branch"
#: Task processes the LocalExecutor may run at once (the DAG allows as many): ≥ 4, so both branches
#: run concurrently.
PARALLELISM = 8

#: Budget for the components to come up and the run (with its ~30 s worst-case branch) to finish.
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
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(PARALLELISM),
            "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-inflight-branch-test-secret-0123456789",
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
    shutil.copytree(INFLIGHT_DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
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

    return str(cluster.wait_for("the DAG run to finish", state, interval=1.0))


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
            f"{t['at']}  {t['from_state'] or '-'} -> {t['to_state']}"
            f"  [{t['actor']}, try {t['try_number']}]  {t['reason']}"
        )

    out = [f"{record['dag_id']} {record['run_id']}: {record['state']}"]
    out.extend(f"    run: {line(t)}" for t in record["transitions"])
    for step in record["steps"]:
        out.append(f"    {step['step_id']}[{step['map_index']}]: {step['state']}")
        out.extend(f"        {line(t)}" for t in step["transitions"])
    out.extend(f"    compensation: {c}" for c in record.get("compensations", []))
    return "\n".join(out)


def _wait_recorded(cluster: Cluster, dag_id: str, run_id: str) -> dict[str, Any]:
    """``wfe runs show --json`` once the saga concluded the run (it has, when Airflow's run ended)."""

    def concluded() -> dict[str, Any] | None:
        record = _wfe_show(cluster, dag_id, run_id)
        return record if record["state"] in ("COMPENSATED", "COMPENSATION_FAILED") else None

    return cluster.wait_for("the wfe run to conclude", concluded, interval=1.0)  # type: ignore[no-any-return]


def _task_instances(cluster: Cluster, run_id: str) -> dict[str, dict[str, Any]]:
    """Airflow's task instances of the run, by task id (no mapped tasks in this DAG)."""
    body = cluster.get(f"{_run_path(DAG_ID, run_id)}/taskInstances")
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def _ti_summary(tis: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"    {tid}: {ti['state']} try {ti['try_number']}  {ti.get('start_date')} -> "
        f"{ti.get('end_date')}"
        for tid, ti in sorted(tis.items(), key=lambda item: str(item[1].get("start_date")))
    )


@dataclass(frozen=True)
class Entry:
    """One ledger line: ``<event> at=<time.time()> pid=<pid> [key=value ...]``."""

    position: int
    event: str
    at: float
    fields: dict[str, str]


def _ledger(cluster: Cluster) -> list[Entry]:
    if not cluster.ledger.is_file():
        return []
    entries = []
    for position, line in enumerate(cluster.ledger.read_text().splitlines()):
        event, _, rest = line.partition(" at=")
        pairs = dict(pair.split("=", 1) for pair in f"at={rest}".split())
        entries.append(Entry(position, event, float(pairs.pop("at")), pairs))
    return entries


def _one(entries: list[Entry], event: str) -> Entry:
    found = [e for e in entries if e.event == event]
    assert len(found) == 1, f"expected one {event!r} line, found {len(found)}"
    return found[0]


def _seconds(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _timings(entries: list[Entry], tis: dict[str, dict[str, Any]]) -> list[str]:
    """What happened when, relative to the failure (for the report; nothing here is asserted)."""
    marks = {e.event: e.at for e in entries}
    failed_at = marks.get("fast_fail failed")
    if failed_at is None:
        return ["(no 'fast_fail failed' line in the ledger)"]
    notes = [f"ledger {event!r}: {at - failed_at:+.2f}s" for event, at in marks.items()]
    for tid, ti in sorted(tis.items(), key=lambda item: str(item[1].get("start_date"))):
        if ti.get("start_date") and ti.get("end_date"):
            notes.append(
                f"airflow {tid} ({ti['state']}): {_seconds(ti['start_date']) - failed_at:+.2f}s"
                f" -> {_seconds(ti['end_date']) - failed_at:+.2f}s"
            )
    return notes


def _check_ledger(entries: list[Entry], run_id: str) -> None:
    events = [e.event for e in entries]
    start_slow = _one(entries, "start slow")
    start_fast = _one(entries, "start fast")
    failed = _one(entries, "fast_fail failed")
    saw = _one(entries, "airflow saw fast_fail failed")
    end_slow = _one(entries, "end slow")
    # Two task processes, both running at once: fast_fail failed after slow_branch started and
    # before it ended, and Airflow knew it while slow_branch still ran.
    assert start_slow.fields["pid"] != start_fast.fields["pid"], "the branches shared a process"
    assert start_slow.position < failed.position < saw.position < end_slow.position, events
    assert start_slow.at <= failed.at <= saw.at <= end_slow.at, events
    assert start_fast.position < failed.position, events

    # Compensation started only once the running branch had finished, undid it first, then the
    # common upstream, and never the failed branch.
    undos = [e for e in entries if e.event.startswith("undo ")]
    assert [e.event for e in undos] == ["undo slow_branch", "undo provision"], events
    assert all(e.position > end_slow.position for e in undos), events
    assert end_slow.at <= undos[0].at <= undos[1].at, events
    assert "undo fast_fail" not in events
    slow_undo, provision_undo = undos
    assert slow_undo.fields["key"] == idempotency_key(DAG_ID, run_id, "slow_branch", -1)
    assert provision_undo.fields["key"] == idempotency_key(DAG_ID, run_id, "provision", -1)
    assert slow_undo.fields["result"] == "warm-cache-on-host-1", slow_undo.fields
    assert provision_undo.fields["result"] == "host-1", provision_undo.fields
    assert slow_undo.fields["try_number"] == provision_undo.fields["try_number"] == "1"


def _check_airflow(
    airflow_state: str, tis: dict[str, dict[str, Any]], entries: list[Entry]
) -> None:
    assert airflow_state == "failed", "Airflow's verdict on the forward steps stands"
    states = {tid: (ti["state"], ti["try_number"]) for tid, ti in tis.items()}
    assert states == {
        "provision": ("success", 1),
        "slow_branch": ("success", 1),
        "fast_fail": ("failed", 1),
        "saga__begin": ("success", 1),
        "compensate__provision": ("success", 1),
        "compensate__slow_branch": ("success", 1),
        "compensate__fast_fail": ("skipped", 1),
        "saga__end": ("success", 1),
    }, states

    def at(tid: str, which: str) -> float:
        return _seconds(tis[tid][f"{which}_date"])

    # Airflow's own dates show the overlap: fast_fail ended while slow_branch was running.
    assert at("slow_branch", "start") <= at("fast_fail", "end") <= at("slow_branch", "end")
    assert at("fast_fail", "start") <= at("slow_branch", "end")
    # The saga started after both branches ended, and undid in reverse dependency order.
    assert at("saga__begin", "start") >= max(at("slow_branch", "end"), at("fast_fail", "end"))
    assert at("compensate__slow_branch", "start") >= at("saga__begin", "end")
    assert at("compensate__provision", "start") >= at("compensate__slow_branch", "end")
    assert at("saga__end", "start") >= at("compensate__provision", "end")
    # The task process wrote "end slow" before Airflow recorded slow_branch finished.
    assert _one(entries, "end slow").at <= at("slow_branch", "end")


def _check_store(record: dict[str, Any], entries: list[Entry]) -> None:
    assert record["state"] == "COMPENSATED", record["state"]
    transitions = record["transitions"]
    assert [t["to_state"] for t in transitions][-3:] == ["FAILED", "COMPENSATING", "COMPENSATED"]
    failed, compensating, compensated = transitions[-3:]
    assert failed["reason"] == "step(s) failed: fast_fail", failed["reason"]
    assert compensated["reason"] == "all 2 compensation(s) succeeded", compensated["reason"]
    assert compensating["actor"] == compensated["actor"] == "saga"
    # saga__begin moved the run to COMPENSATING only after the slow branch's last ledger line.
    assert _seconds(compensating["at"]) >= _one(entries, "end slow").at

    steps = {(s["step_id"], s["map_index"]): s for s in record["steps"]}
    assert set(steps) == {("provision", -1), ("slow_branch", -1), ("fast_fail", -1)}, sorted(steps)
    for step_id in ("slow_branch", "provision"):
        step = steps[(step_id, -1)]
        assert step["state"] == "COMPENSATED", (step_id, step["state"])
        moves = [t["to_state"] for t in step["transitions"]]
        assert moves[-3:] == ["SUCCEEDED", "COMPENSATING", "COMPENSATED"], (step_id, moves)
        assert moves.count("COMPENSATING") == 1, (step_id, moves)
        assert [t["actor"] for t in step["transitions"][-2:]] == ["saga", "saga"], step_id
    fast = steps[("fast_fail", -1)]
    assert fast["state"] == "FAILED", fast["state"]
    assert "COMPENSATING" not in [t["to_state"] for t in fast["transitions"]]

    compensations = record["compensations"]
    assert [(c["order"], c["step_id"], c["map_index"], c["outcome"]) for c in compensations] == [
        (1, "slow_branch", -1, "COMPENSATED"),
        (2, "provision", -1, "COMPENSATED"),
    ], compensations
    first, second = compensations
    assert _seconds(first["ended_at"]) <= _seconds(second["started_at"]), compensations
    assert _seconds(first["started_at"]) >= _one(entries, "end slow").at, compensations


def test_a_failure_waits_for_the_running_branch_then_undoes_it(cluster: Cluster) -> None:
    _login(cluster)
    run_id = _trigger(cluster, DAG_ID)
    airflow_state = _wait_finished(cluster, DAG_ID, run_id)
    cluster.mark(f"run finished in Airflow: {airflow_state}")
    record = _wait_recorded(cluster, DAG_ID, run_id)
    cluster.mark(f"wfe run: {record['state']}")
    tis = _task_instances(cluster, run_id)
    entries = _ledger(cluster)
    for note in _timings(entries, tis):
        cluster.mark(note)

    problem = None
    try:
        assert cluster.listener_complaints() == []
        _check_ledger(entries, run_id)
        _check_airflow(airflow_state, tis, entries)
        _check_store(record, entries)
    except AssertionError as exc:
        problem = str(exc) or repr(exc)
    if problem is not None:  # outside `except`, so the report is not doubled by exception chaining
        cluster.fail(
            f"{problem}\n\n--- wfe store:\n{_render(record)}\n\n"
            f"--- Airflow task instances:\n{_ti_summary(tis)}"
        )
