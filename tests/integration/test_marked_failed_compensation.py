"""A run a person marks failed in Airflow (REST ``PATCH .../dagRuns/{run_id}`` with
``state=failed``, what the UI's "mark as failed" sends) while no step runs compensates
automatically, unless its DAG opts out; under a real scheduler, since the compensation is the saga's
tasks that Airflow's scheduler runs.

Marking such a run failed skips every pending task and fails none: the saga's teardown tasks, which
Airflow leaves to run, find no failed step, so without the harness nothing would undo the step that
succeeded. The harness requests the compensation inside the API server's request (run FAILED →
COMPENSATING, the user as actor) and clears the saga tasks through the request's session. A second
mark-failed of the compensated run requests nothing more (the run is no longer FAILED): each
compensation runs once. (A run marked failed while a step runs has that step failed by Airflow, and
its saga compensates as for any failed step.)
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster import FINISHED, Cluster, render_records

from airflow_wfe.adapters.saga.tasks import idempotency_key

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.cluster("marked_failed", deadline_s=240.0, ledger=True),
]

AUTO = "wfe_t_marked_failed"
OPTED_OUT = "wfe_t_marked_failed_opted_out"


def _mark_failed(cluster: Cluster, dag_id: str, run_id: str) -> None:
    status, body = cluster.request("PATCH", cluster.run_path(dag_id, run_id), {"state": "failed"})
    if status != 200:
        cluster.fail(f"marking {dag_id}/{run_id} failed answered {status}: {body}")
    cluster.mark(f"{dag_id} marked failed")


def test_a_run_marked_failed_is_compensated_unless_its_dag_opts_out(cluster: Cluster) -> None:
    cluster.login()
    status, body = cluster.request("POST", "/api/v2/pools", {"name": "wfe_held", "slots": 0})
    if status not in (200, 201):
        cluster.fail(f"creating the pool wfe_held answered {status}: {body}")
    runs = {AUTO: cluster.trigger(AUTO), OPTED_OUT: cluster.trigger(OPTED_OUT)}

    def held() -> bool:
        states = {dag_id: cluster.task_instances(dag_id, run_id) for dag_id, run_id in runs.items()}
        return all(
            tis.get("a", {}).get("state") == "success"
            and tis.get("held", {}).get("state") == "scheduled"
            for tis in states.values()
        )

    cluster.wait_until("`a` done and `held` waiting in both runs", held)
    for dag_id, run_id in runs.items():
        _mark_failed(cluster, dag_id, run_id)

    def settled() -> dict[str, dict[str, Any]] | None:
        records = {dag_id: cluster.show_run(dag_id, run_id) for dag_id, run_id in runs.items()}
        done = records[AUTO]["state"] in ("COMPENSATED", "COMPENSATION_FAILED")
        airflow = cluster.get(cluster.run_path(OPTED_OUT, runs[OPTED_OUT]))["state"]
        return records if done and airflow in FINISHED else None

    records = cluster.wait_until("the marked-failed run to be compensated", settled, interval=2.0)
    auto, opted_out = records[AUTO], records[OPTED_OUT]
    try:
        assert auto["state"] == "COMPENSATED"
        moves = [(t["to_state"], t["actor"]) for t in auto["transitions"]]
        assert ("FAILED", "user:admin") in moves, moves
        assert ("COMPENSATING", "user:admin") in moves, moves
        compensating = next(t for t in auto["transitions"] if t["to_state"] == "COMPENSATING")
        assert compensating["reason"] == (
            "automatic compensation: the run was marked failed by hand in Airflow (user:admin)"
        )
        steps = {s["step_id"]: s["state"] for s in auto["steps"]}
        assert steps == {"a": "COMPENSATED", "held": "SKIPPED"}, steps
        undone = [line for line in cluster.ledger_lines() if line.startswith("undo a")]
        assert undone == [f"undo a {idempotency_key(AUTO, runs[AUTO], 'a', -1)}"], undone

        assert opted_out["state"] == "FAILED"
        assert "COMPENSATING" not in [t["to_state"] for t in opted_out["transitions"]]
        assert {s["step_id"]: s["state"] for s in opted_out["steps"]}["a"] == "SUCCEEDED"
    except AssertionError as exc:
        cluster.fail(f"{exc}\n{render_records(auto)}\n{render_records(opted_out)}")

    # Marked failed once more: the hook runs inside the request, so by its answer any request
    # would be recorded; none is (the run is COMPENSATED, not FAILED).
    _mark_failed(cluster, AUTO, runs[AUTO])
    again = cluster.show_run(AUTO, runs[AUTO])
    try:
        assert [t["to_state"] for t in again["transitions"]].count("COMPENSATING") == 1
        assert again["state"] == "COMPENSATED"
        assert len(again["compensations"]) == len(auto["compensations"])
    except AssertionError as exc:
        cluster.fail(f"{exc}\n{render_records(again)}")
