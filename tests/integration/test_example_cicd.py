"""The CI/CD example (``dags/wfe_example_cicd.py``) through a real scheduler, against its real target.

Three releases, one after the other, on a cluster (see ``cluster.py``) whose DAGs folder holds the
example, its target module and its policy, exactly as shipped:

* a healthy, low-risk release: approved automatically, the canary's real HTTP error rate is within
  the limit, the rollout reaches every host in three waves; every host's ``current`` link points at
  it; the run COMPLETES;
* a release that fails 20% of its requests: the canary gate measures it and rolls it back; the run
  is COMPENSATED and the canary host's ``current`` points at the previous release again;
* a high-risk change (900 lines): the gate waits for a person; admin approves through Airflow's
  Human-in-the-loop REST API; the release goes out.

``wfe dora`` then counts three deployments of the DAG, one of them failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cluster import Cluster
from example_cluster import example_folder, outcomes, trigger

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

DAG_ID = "wfe_example_cicd"
FILES = ["wfe_example_cicd.py", "cicd_target.py", "policies/cicd.yaml"]
HOSTS = [f"web-{n}" for n in range(1, 6)]


def _fleet(root: Path) -> dict[str, str | None]:
    def version(host: str) -> str | None:
        link = root / "hosts" / host / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    return {host: version(host) for host in HOSTS}


def _approve(cluster: Cluster, run_id: str) -> None:
    """Wait until the gate asks and Airflow has finished the workload that parked it (see
    ``test_policy_approvals._waiting`` for Airflow 3.3's race), then approve as admin."""
    path = f"{cluster.run_path(DAG_ID, run_id)}/taskInstances/approve_release/-1/hitlDetails"

    def waiting() -> bool:
        status, body = cluster.request("GET", path)
        ti = cluster.task_instances(DAG_ID, run_id).get("approve_release", {})
        if status != 200 or body.get("response_received") or ti.get("state") != "awaiting_input":
            return False
        log = (cluster.logs / "scheduler.log").read_text(errors="replace")
        return any(
            "TaskInstance Finished" in line and f"ti_id={ti['id']}" in line
            for line in log.splitlines()
        )

    cluster.wait_until("the high-risk release to wait for approval", waiting)
    status, body = cluster.request(
        "PATCH", path, {"chosen_options": ["Approve"], "params_input": {"comment": "reviewed"}}
    )
    if status != 200:
        cluster.fail(f"approving answered {status}: {body}")
    cluster.mark("high-risk release approved")


def test_cicd_example_promotes_rolls_back_and_asks(tmp_path: Path) -> None:
    dags = example_folder(tmp_path, FILES)
    env = {"AIRFLOW__WFE__POLICY_PATH": str(tmp_path / "dags" / "policies")}
    with Cluster.running(tmp_path, dags=dags, deadline_s=420.0, extra_env=env) as cluster:
        root = cluster.home / "wfe-demo-cicd"
        cluster.login()

        good = trigger(cluster, DAG_ID, {})
        airflow = cluster.wait_run_finished(DAG_ID, good)
        record = cluster.show_run(DAG_ID, good)
        decisions = outcomes(record)

        def promoted() -> None:
            assert airflow["state"] == "success", airflow
            assert record["state"] == "COMPLETED", record["state"]
            assert decisions["approve_release"] == ["allow"], decisions
            assert decisions["monitoring"] == ["promote"], decisions
            waves = [decisions[f"promote.wave_{n}_check"] for n in (1, 2, 3)]
            assert waves == [["continue"]] * 3, decisions
            assert _fleet(root) == dict.fromkeys(HOSTS, "2026.12.2"), _fleet(root)

        cluster.verify(promoted, json.dumps(record["decisions"], indent=1)[:3000])

        bad = trigger(cluster, DAG_ID, {"version": "2026.12.3", "error_rate": 0.2})
        airflow = cluster.wait_run_finished(DAG_ID, bad)
        record = cluster.show_run(DAG_ID, bad)
        canary = next(d for d in record["decisions"] if d["step_id"] == "monitoring")

        def rolled_back() -> None:
            assert airflow["state"] == "failed", airflow
            assert record["state"] == "COMPENSATED", record["state"]
            assert canary["outcome"] == "rollback", canary
            (reason,) = canary["reasons"]
            assert "above the limit 0.05" in reason["message"], reason
            assert _fleet(root) == dict.fromkeys(HOSTS, "2026.12.2"), _fleet(root)
            assert (root / "releases" / "2026.12.3" / "release.json").is_file()

        cluster.verify(rolled_back, json.dumps(canary, indent=1)[:3000])

        risky = trigger(cluster, DAG_ID, {"version": "2026.12.4", "lines_changed": 900})
        _approve(cluster, risky)
        airflow = cluster.wait_run_finished(DAG_ID, risky)
        record = cluster.show_run(DAG_ID, risky)
        decisions = outcomes(record)

        def approved() -> None:
            assert airflow["state"] == "success", airflow
            assert record["state"] == "COMPLETED", record["state"]
            assert decisions["approve_release"][0] == "needs_approval", decisions
            assert "approved" in decisions["approve_release"][1:], decisions
            assert _fleet(root) == dict.fromkeys(HOSTS, "2026.12.4"), _fleet(root)

        cluster.verify(approved, json.dumps(record["decisions"], indent=1)[:3000])

        proc = cluster.wfe("dora", "--dag", DAG_ID, "--json")
        dora = json.loads(proc.stdout) if proc.returncode == 0 else []

        def counted() -> None:
            assert proc.returncode == 0, proc.stderr
            (figures,) = dora
            assert (figures["deployments"], figures["failures"]) == (3, 1), figures
            assert figures["change_failure_rate"] == pytest.approx(1 / 3), figures

        cluster.verify(counted)
