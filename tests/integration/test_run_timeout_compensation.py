"""A run Airflow fails for its ``dagrun_timeout`` (no step failed) compensates automatically, unless
its DAG opts out; under a real scheduler (``dag.test()`` enforces no ``dagrun_timeout``)."""

from __future__ import annotations

import pytest
from cluster import Cluster, render_records

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.cluster("timeout", deadline_s=240.0, ledger=True),
]

AUTO = "wfe_t_run_timeout"
OPTED_OUT = "wfe_t_run_timeout_manual"


def test_a_timed_out_run_is_compensated_unless_its_dag_opts_out(cluster: Cluster) -> None:
    cluster.login()
    runs = {AUTO: cluster.trigger(AUTO), OPTED_OUT: cluster.trigger(OPTED_OUT)}
    cluster.wait_run_finished(OPTED_OUT, runs[OPTED_OUT])  # both are recorded by then

    def settled() -> dict[str, dict[str, object]] | None:
        records = {dag_id: cluster.show_run(dag_id, run_id) for dag_id, run_id in runs.items()}
        done = records[AUTO]["state"] in ("COMPENSATED", "COMPENSATION_FAILED")
        timed_out = records[OPTED_OUT]["state"] == "FAILED"
        return records if done and timed_out else None

    records = cluster.wait_until("the timed-out run to be compensated", settled, interval=2.0)
    auto = records[AUTO]
    try:
        assert auto["state"] == "COMPENSATED"
        moves = [(t["to_state"], t["actor"]) for t in auto["transitions"]]
        assert ("FAILED", "scheduler") in moves
        assert ("COMPENSATING", "scheduler") in moves
        failed = next(t for t in auto["transitions"] if t["to_state"] == "FAILED")
        assert failed["reason"].startswith("TIMED_OUT: the run exceeded its dagrun_timeout")
        compensating = next(t for t in auto["transitions"] if t["to_state"] == "COMPENSATING")
        assert compensating["reason"].startswith("automatic compensation: TIMED_OUT")
        steps = {s["step_id"]: s["state"] for s in auto["steps"]}
        assert steps["a"] == "COMPENSATED"
        undo = [line for line in cluster.ledger_lines() if line.startswith("undo a")]
        assert len(undo) == 1

        manual = records[OPTED_OUT]
        assert manual["state"] == "FAILED"
        assert "COMPENSATING" not in [t["to_state"] for t in manual["transitions"]]
    except AssertionError as exc:
        cluster.fail(f"{exc}\n{render_records(auto)}\n{render_records(records[OPTED_OUT])}")
