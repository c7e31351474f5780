"""The real ``airflow dag-processor`` reports a broken workflow file and still serves its neighbours.

``test_broken_workflow_files.py`` shows it with an in-process DagBag. Here the production path: an
``airflow dag-processor`` parses a copy of ``tests/dags_broken`` into a throw-away metadata database
and an ``airflow api-server`` answers what it stored. The folder holds two DAG files: the loader
(``load_workflows("workflows")``, which skips a broken workflow file) and the reporter
(``report_workflow_errors("workflows")``, which defines no DAG and raises the broken files'
problems). Airflow deactivates every DAG of a file with an import error (apache/airflow#49769), hence
the split. ``fine.yaml`` is valid; ``t_broken.yaml`` has the typo ``backof`` on line 8 and nothing
else wrong.

Expected: ``GET /api/v2/importErrors`` lists exactly one error, the reporter's, with the typo's
file, line and key path; the loader has none; ``wfe_t_fine_next_to_broken`` is served (listed, not
stale, no import errors, a manual trigger is accepted) and stays so over the next re-parse;
``wfe_t_yaml_broken`` is unknown. Then the typo is fixed in place; the next parse of the (unchanged)
DAG files must clear the import error and serve both DAGs.

No scheduler: nothing is run (a triggered run just stays queued). ``[dag_processor]
min_file_process_interval`` is a few seconds, so the processor re-parses the DAG files soon after
the YAML file changes (their own mtimes do not change, so only that interval brings the re-parse).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SOURCE_FOLDER = REPO / "tests" / "dags_broken"
BIN = Path(sys.executable).parent
LOADER_FILE = "wfe_folder_with_a_broken_workflow.py"
REPORTER_FILE = "wfe_workflow_errors.py"
FINE_DAG = "wfe_t_fine_next_to_broken"
BROKEN_DAG = "wfe_t_yaml_broken"
PROBLEM = "t_broken.yaml:8: steps.one.retry.backof: unknown key (did you mean 'backoff'?)"

#: Budget for the components to come up and the first parse to land (from after `db migrate`).
FIRST_PARSE_DEADLINE_S = 120.0
#: Budget for each later re-parse (min_file_process_interval + parse + DB write).
REPARSE_DEADLINE_S = 60.0
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


def _component_env(home: Path, dags: Path, api_port: int) -> dict[str, str]:
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
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-broken-files-test-secret-0123456789abcdef",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{home / 'wfe.db'}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
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
    """The API server and dag-processor running on 127.0.0.1, and how to talk to them."""

    home: Path
    dags: Path
    env: dict[str, str]
    base_url: str
    logs: Path
    deadline: float
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    token: str | None = None
    started: float = field(default_factory=time.monotonic)
    phases: list[str] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s  {phase}"
        self.phases.append(line)
        print(line)

    def diagnostics(self) -> str:
        """Phases, the metadata the API serves right now and the tails of every component log."""
        parts = ["--- phases:", *(f"    {line}" for line in self.phases)]
        if self.token:
            for path in ("/api/v2/importErrors", "/api/v2/dags?exclude_stale=false"):
                with contextlib.suppress(OSError, urllib.error.URLError):
                    status, body = self.request("GET", path)
                    parts.append(f"--- GET {path} -> {status}:")
                    parts.append(f"    {json.dumps(body, default=str)[:3000]}")
        for name, proc in self.processes.items():
            code = proc.poll()
            status = "running" if code is None else f"exited with {code}"
            parts.append(f"--- {name} ({status}), last lines of {self.logs / (name + '.log')}:")
            parts.append(_tail(self.logs / f"{name}.log"))
        parse_logs = sorted((self.home / "logs" / "dag_processor").glob("**/*.log"))
        if parse_logs:
            parts.append(f"--- last dag-processor file log, {parse_logs[-1]}:")
            parts.append(_tail(parse_logs[-1], lines=20))
        parts.append(_metadata_rows(self.home / "airflow.db"))
        return "\n".join(parts)

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n\n{self.diagnostics()}", pytrace=False)

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
            # Also reaches children (uvicorn workers, file-parsing processes) that stayed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

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
        """The JSON body of a GET that must answer 200."""
        status, body = self.request("GET", path)
        if status != 200:
            self.fail(f"GET {path} answered {status}: {body}")
        return body

    def wait_for(self, what: str, probe: Callable[[], Any], interval: float = 0.5) -> Any:
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
    shutil.copytree(SOURCE_FOLDER, dags, ignore=shutil.ignore_patterns("__pycache__"))
    (api_port,) = _free_ports(1)
    cluster = Cluster(
        home=home,
        dags=dags,
        env=_component_env(home, dags, api_port),
        base_url=f"http://127.0.0.1:{api_port}",
        logs=logs,
        deadline=float("inf"),
    )
    cluster.run_cli("db-migrate", "db", "migrate")
    cluster.mark("airflow db migrate done")
    cluster.deadline = time.monotonic() + FIRST_PARSE_DEADLINE_S
    try:
        cluster.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(api_port), "-w", "1")
        cluster.start("dag-processor", "dag-processor")
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


def _import_errors(cluster: Cluster) -> list[dict[str, Any]]:
    return list(cluster.get("/api/v2/importErrors")["import_errors"])


def _served_dag_ids(cluster: Cluster) -> set[str]:
    """DAG ids the API lists as not stale."""
    return {dag["dag_id"] for dag in cluster.get("/api/v2/dags?limit=100")["dags"]}


def _task_ids(cluster: Cluster, dag_id: str) -> list[str] | None:
    """Task ids of the serialized DAG, or None when the API does not know the DAG."""
    status, body = cluster.request("GET", f"/api/v2/dags/{dag_id}/tasks")
    if status != 200:
        return None
    return sorted(task["task_id"] for task in body["tasks"])


def _is_dag_file(filename: str, dag_file: str, cluster: Cluster) -> bool:
    """Airflow 3 stores the file relative to its bundle; accept the absolute path too."""
    return filename in (dag_file, str(cluster.dags / dag_file))


def _check(cluster: Cluster, condition: bool, message: str) -> None:
    if not condition:
        cluster.fail(message)


def _not_served_because(cluster: Cluster, dag_id: str) -> list[str]:
    """Why ``dag_id`` is not a DAG users can see and run (empty when it is).

    A DAG is served when its row is neither stale nor flagged with import errors, the DAG list
    (which leaves stale DAGs out) shows it and a manual trigger is accepted (the API answers 404 for
    a stale DAG and 400 for one with import errors; no scheduler runs here, the run just queues).
    """
    dag = cluster.get(f"/api/v2/dags/{dag_id}")
    reasons = []
    if dag.get("is_stale") is not False or dag.get("has_import_errors") is not False:
        reasons.append(
            f"GET /api/v2/dags/{dag_id}: is_stale={dag.get('is_stale')}, "
            f"has_import_errors={dag.get('has_import_errors')}"
        )
    listed = _served_dag_ids(cluster)
    if dag_id not in listed:
        reasons.append(f"GET /api/v2/dags does not list it (lists {sorted(listed)})")
    status, body = cluster.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    if status != 200:
        reasons.append(f"POST /api/v2/dags/{dag_id}/dagRuns answered {status}: {body}")
    return reasons


def _metadata_rows(database: Path) -> str:
    """What the dag-processor stored, straight from the metadata database."""
    queries = {
        "dag": "select dag_id, relative_fileloc, is_stale, has_import_errors from dag",
        "serialized_dag": "select dag_id from serialized_dag",
        "dag_version": "select dag_id, version_number from dag_version",
        "import_error": "select bundle_name, filename from import_error",
    }
    uri = f"file:{database}?mode=ro"
    lines = ["--- metadata database rows:"]
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            for table, query in queries.items():
                lines.append(f"    {table}: {db.execute(query).fetchall()}")
    except sqlite3.Error as exc:
        lines.append(f"    (cannot read {uri}: {exc})")
    return "\n".join(lines)


def _last_parsed(cluster: Cluster, dag_id: str) -> str | None:
    return cluster.get(f"/api/v2/dags/{dag_id}").get("last_parsed_time")


def _check_import_error(cluster: Cluster, broken_file: Path) -> None:
    """Exactly one import error: the reporter's, with the typo and nothing about fine.yaml."""
    errors = _import_errors(cluster)
    _check(cluster, len(errors) == 1, f"expected one import error, got {errors}")
    (error,) = errors
    _check(
        cluster,
        _is_dag_file(error["filename"], REPORTER_FILE, cluster),
        f"the import error names {error['filename']!r}, not the reporter {REPORTER_FILE}",
    )
    _check(
        cluster,
        not _is_dag_file(error["filename"], LOADER_FILE, cluster),
        f"the loader {LOADER_FILE} has an import error: {error}",
    )
    trace = error["stack_trace"]
    _check(cluster, PROBLEM in trace, f"{PROBLEM!r} is not in the import error:\n{trace}")
    _check(
        cluster,
        f"{broken_file.resolve()}:8:" in trace,
        f"the import error does not name the copied file {broken_file.resolve()}:\n{trace}",
    )
    _check(cluster, "fine.yaml" not in trace, f"the import error mentions fine.yaml:\n{trace}")


def _check_served(cluster: Cluster, dag_id: str, tasks: list[str], when: str) -> None:
    found = _task_ids(cluster, dag_id)
    _check(cluster, found == tasks, f"{when}: {dag_id} is not serialized with {tasks}: {found}")
    reasons = _not_served_because(cluster, dag_id)
    _check(cluster, not reasons, f"{when}: {dag_id} is not served: {reasons}")


def test_dag_processor_reports_the_broken_file_and_serves_the_rest(cluster: Cluster) -> None:
    _login(cluster)
    broken_file = cluster.dags / "workflows" / "t_broken.yaml"

    # -- 1. the reporter carries the broken file's problem; the fine workflow is a served DAG ------
    def first_parse() -> bool:
        return bool(_import_errors(cluster)) and _task_ids(cluster, FINE_DAG) is not None

    cluster.wait_for(f"an import error and {FINE_DAG}", first_parse)
    cluster.mark("first parse stored: import error and serialized fine DAG")

    _check_import_error(cluster, broken_file)
    _check_served(cluster, FINE_DAG, ["only"], "next to the broken file")
    status, body = cluster.request("GET", f"/api/v2/dags/{BROKEN_DAG}")
    _check(cluster, status == 404, f"GET /api/v2/dags/{BROKEN_DAG} answered {status}: {body}")
    listed = _served_dag_ids(cluster)
    _check(
        cluster, listed == {FINE_DAG}, f"expected only {FINE_DAG} to be served: {sorted(listed)}"
    )
    cluster.mark(f"import error of {REPORTER_FILE} checked, {FINE_DAG} served")

    # -- 2. still so after the dag-processor parsed the loader again ------------------------------
    parsed = _last_parsed(cluster, FINE_DAG)
    cluster.deadline = time.monotonic() + REPARSE_DEADLINE_S
    cluster.wait_for(
        f"a re-parse of {LOADER_FILE}", lambda: _last_parsed(cluster, FINE_DAG) != parsed
    )
    _check_import_error(cluster, broken_file)
    _check_served(cluster, FINE_DAG, ["only"], "after a re-parse")
    cluster.mark(f"re-parse: {FINE_DAG} still served, import error unchanged")

    # -- 3. fix the typo in place: the import error goes, both workflows are served ----------------
    text = broken_file.read_text()
    _check(cluster, "backof:" in text, f"the copied broken file has no typo:\n{text}")
    broken_file.write_text(text.replace("backof:", "backoff:"))
    cluster.mark("t_broken.yaml fixed")
    cluster.deadline = time.monotonic() + REPARSE_DEADLINE_S

    def reparsed() -> bool:
        return not _import_errors(cluster) and _task_ids(cluster, BROKEN_DAG) is not None

    cluster.wait_for(f"the import error to clear and {BROKEN_DAG} to appear", reparsed)
    cluster.mark("re-parse stored: no import error, fixed DAG serialized")

    for dag_id, tasks in ((FINE_DAG, ["only"]), (BROKEN_DAG, ["one"])):
        _check_served(cluster, dag_id, tasks, "after the fix")
    listed = _served_dag_ids(cluster)
    _check(
        cluster,
        listed == {FINE_DAG, BROKEN_DAG},
        f"expected exactly {FINE_DAG} and {BROKEN_DAG} to be served: {sorted(listed)}",
    )
    cluster.mark("fix checked")
