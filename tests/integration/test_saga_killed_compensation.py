"""A compensation whose process is SIGKILLed mid-way is retried, and applied exactly once.

``dag.test()`` runs every task in the test process, so a task that kills its own process would kill
the test. This test therefore runs the production path, as ``test_real_scheduler.py`` does (through the
shared harness ``cluster.py``): api-server, dag-processor and scheduler with LocalExecutor on
127.0.0.1 in a throw-away ``AIRFLOW_HOME``; the DAGs folder is a copy of ``tests/scenarios/killed``.

The DAG (``wfe_t_saga_killed_compensation``): ``charge`` succeeds, ``ship`` fails, so
``compensate__charge`` runs; on try 1 its function applies the refund (ledger line ``applied <key>``)
and SIGKILLs its own task process before the saga records COMPENSATED. The LocalExecutor's
supervisor sees the task process die and, retries being left, reports it ``up_for_retry``; try 2
calls the function again with the same idempotency key, which finds the refund applied, and the saga
records COMPENSATED. Checked through ``wfe runs show --json``, the ledger and Airflow's REST API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from cluster import Cluster, render_records

DAG_ID = "wfe_t_saga_killed_compensation"
COMPENSATION_TASK = "compensate__charge"

#: Budget for the components to come up and the run (with its killed try) to finish.
RUN_DEADLINE_S = 200.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.cluster("killed", deadline_s=RUN_DEADLINE_S, ledger=True),
]


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
    cluster.login()
    run_id = cluster.trigger(DAG_ID)
    airflow_state = cluster.wait_run_finished(DAG_ID, run_id)["state"]
    cluster.mark(f"run finished in Airflow: {airflow_state}")

    ti_path = f"{cluster.run_path(DAG_ID, run_id)}/taskInstances/{COMPENSATION_TASK}"
    ti = cluster.get(ti_path)
    tries = sorted(cluster.get(f"{ti_path}/tries")["task_instances"], key=lambda t: t["try_number"])
    record = cluster.show_run(DAG_ID, run_id)
    lines = cluster.ledger_lines()
    for note in [*_timings(_attempts(lines), tries), _who_noticed(cluster)]:
        cluster.mark(note)

    tries_text = "\n".join(
        f"    try {t['try_number']}: {t['state']} {t.get('start_date')} -> {t.get('end_date')}"
        for t in tries
    )
    cluster.verify(
        lambda: _check(cluster, airflow_state, record, ti, tries, lines),
        f"--- wfe store:\n{render_records(record)}",
        f"--- Airflow tries of {COMPENSATION_TASK}:\n{tries_text}",
    )
