"""The real ``airflow dag-processor`` reports a broken workflow file and still serves its neighbours.

``test_broken_workflow_files.py`` shows it with an in-process DagBag. Here the production path: an
``airflow dag-processor`` parses a copy of ``tests/scenarios/broken`` into a throw-away metadata database
and an ``airflow api-server`` answers what it stored (both run by ``cluster.py``). The folder holds
two DAG files: the loader (``load_workflows("workflows")``, which skips a broken workflow file) and
the reporter (``report_workflow_errors("workflows")``, which defines no DAG and raises the broken
files' problems). Airflow deactivates every DAG of a file with an import error (apache/airflow#49769), hence
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
import sqlite3
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, tail

REPO = Path(__file__).resolve().parents[2]
LOADER_FILE = "wfe_folder_with_a_broken_workflow.py"
REPORTER_FILE = "wfe_workflow_errors.py"
FINE_DAG = "wfe_t_fine_next_to_broken"
BROKEN_DAG = "wfe_t_yaml_broken"
PROBLEM = "t_broken.yaml:8: steps.one.retry.backof: unknown key (did you mean 'backoff'?)"

#: Budget for the components to come up and the first parse to land (from after `db migrate`).
FIRST_PARSE_DEADLINE_S = 120.0
#: Budget for each later re-parse (min_file_process_interval + parse + DB write).
REPARSE_DEADLINE_S = 60.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.cluster(
        "broken",
        deadline_s=FIRST_PARSE_DEADLINE_S,
        components=("api-server", "dag-processor"),
        extra_env={
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        },
    ),
]


@pytest.fixture
def cluster(cluster: Cluster) -> Cluster:
    """The cluster of the marker, whose failures also show what the API serves and the dag-processor
    stored."""
    cluster.add_diagnostics(lambda: _served_metadata(cluster))
    return cluster


def _served_metadata(cluster: Cluster) -> str:
    """What the API serves and the dag-processor stored right now, and its last file log."""
    parts = []
    if cluster.token:
        for path in ("/api/v2/importErrors", "/api/v2/dags?exclude_stale=false"):
            with contextlib.suppress(OSError, urllib.error.URLError):
                status, body = cluster.request("GET", path)
                parts.append(f"--- GET {path} -> {status}:")
                parts.append(f"    {json.dumps(body, default=str)[:3000]}")
    parse_logs = sorted((cluster.home / "logs" / "dag_processor").glob("**/*.log"))
    if parse_logs:
        parts.append(f"--- last dag-processor file log, {parse_logs[-1]}:")
        parts.append(tail(parse_logs[-1], lines=20))
    parts.append(_metadata_rows(cluster.home / "airflow.db"))
    return "\n".join(parts)


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
    cluster.login()
    broken_file = cluster.dags / "workflows" / "t_broken.yaml"

    # -- 1. the reporter carries the broken file's problem; the fine workflow is a served DAG ------
    def first_parse() -> bool:
        return bool(_import_errors(cluster)) and _task_ids(cluster, FINE_DAG) is not None

    cluster.wait_until(f"an import error and {FINE_DAG}", first_parse)
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
    cluster.set_deadline(REPARSE_DEADLINE_S)
    cluster.wait_until(
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
    cluster.set_deadline(REPARSE_DEADLINE_S)

    def reparsed() -> bool:
        return not _import_errors(cluster) and _task_ids(cluster, BROKEN_DAG) is not None

    cluster.wait_until(f"the import error to clear and {BROKEN_DAG} to appear", reparsed)
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
