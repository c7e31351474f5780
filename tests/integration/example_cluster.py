"""What the example tests share: a DAGs folder with only one example's files, and triggering with conf.

Each example's integration test (``test_example_*.py``) runs it through a real scheduler with the
:class:`~cluster.Cluster` harness, on a folder holding just that example (its DAG file, helpers and
policies, copied from ``dags/`` as shipped), so the dag-processor has nothing else to parse.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cluster import Cluster

#: The shipped examples.
DAGS = Path(__file__).resolve().parents[2] / "dags"


def example_folder(tmp_path: Path, files: list[str]) -> Path:
    """``tmp_path/example`` with ``files`` (paths relative to ``dags/``) copied from the examples."""
    folder = tmp_path / "example"
    for name in files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DAGS / name, target)
    return folder


def trigger(cluster: Cluster, dag_id: str, conf: dict[str, Any]) -> str:
    """Wait until ``dag_id`` is parsed, then trigger a run with ``conf``; its run id."""

    def parsed() -> bool:
        return cluster.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200

    cluster.wait_until(f"the dag-processor to parse {dag_id}", parsed)
    status, body = cluster.request(
        "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf}
    )
    if status != 200:
        cluster.fail(f"triggering {dag_id} with {conf} answered {status}: {body}")
    cluster.mark(f"{dag_id} triggered with {conf}")
    return str(body["dag_run_id"])


def outcomes(record: dict[str, Any]) -> dict[str, list[str]]:
    """A ``wfe runs show --json`` record's decisions: outcomes by gate, in order."""
    found: dict[str, list[str]] = {}
    for decision in record["decisions"]:
        found.setdefault(decision["step_id"], []).append(decision["outcome"])
    return found
