"""A branch fails while a parallel branch still runs: the saga waits for it, then undoes it too.

``dag.test()`` runs one task at a time, so it cannot show what happens when a governed saga's step
fails while another branch of the run is still in flight. This test runs the production path, as
``test_saga_killed_compensation.py`` does (through the shared harness ``cluster.py``): api-server,
dag-processor and scheduler with LocalExecutor on 127.0.0.1 in a throw-away ``AIRFLOW_HOME``, with
enough parallelism for both branches to run at once in their own task processes; the DAGs folder is a
copy of ``tests/scenarios/inflight``.

The DAG (``wfe_t_saga_inflight_branch``): ``provision`` → (``slow_branch``, ``fast_fail``). The
branches meet in the ledger: ``fast_fail`` fails once ``slow_branch`` has started, and
``slow_branch`` ends only after the ledger and Airflow both show ``fast_fail`` failed (plus 2 s).
Expected: ``saga__begin`` (downstream of every forward task) starts only after ``slow_branch``
ended; ``slow_branch`` succeeded, so it is undone, then ``provision``; ``fast_fail`` is not. Checked
through the ledger's order and timestamps, Airflow's REST API (states and start/end dates) and
``wfe runs show --json``. Only orderings of recorded timestamps are asserted, never durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from cluster import Cluster, render_records

from airflow_wfe.adapters.saga.tasks import idempotency_key

DAG_ID = "wfe_t_saga_inflight_branch"
#: Task processes the LocalExecutor may run at once (the DAG allows as many): ≥ 4, so both branches
#: run concurrently.
PARALLELISM = 8

#: Budget for the components to come up and the run (with its ~30 s worst-case branch) to finish.
RUN_DEADLINE_S = 200.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.cluster(
        "inflight",
        deadline_s=RUN_DEADLINE_S,
        ledger=True,
        extra_env={
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(PARALLELISM),
        },
    ),
]


def _wait_recorded(cluster: Cluster, dag_id: str, run_id: str) -> dict[str, Any]:
    """``wfe runs show --json`` once the saga concluded the run (it has, when Airflow's run ended)."""

    def concluded() -> dict[str, Any] | None:
        record = cluster.show_run(dag_id, run_id)
        return record if record["state"] in ("COMPENSATED", "COMPENSATION_FAILED") else None

    return cluster.wait_until("the wfe run to conclude", concluded, interval=1.0)  # type: ignore[no-any-return]


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
    entries = []
    for position, line in enumerate(cluster.ledger_lines()):
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
    cluster.login()
    run_id = cluster.trigger(DAG_ID)
    airflow_state = str(cluster.wait_run_finished(DAG_ID, run_id)["state"])
    cluster.mark(f"run finished in Airflow: {airflow_state}")
    record = _wait_recorded(cluster, DAG_ID, run_id)
    cluster.mark(f"wfe run: {record['state']}")
    tis = cluster.task_instances(DAG_ID, run_id)
    entries = _ledger(cluster)
    for note in _timings(entries, tis):
        cluster.mark(note)

    def check() -> None:
        assert cluster.listener_complaints() == []
        _check_ledger(entries, run_id)
        _check_airflow(airflow_state, tis, entries)
        _check_store(record, entries)

    cluster.verify(
        check,
        f"--- wfe store:\n{render_records(record)}",
        f"--- Airflow task instances:\n{_ti_summary(tis)}",
    )
