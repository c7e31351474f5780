"""``wfe compensate``: a COMPLETED run undone by hand, through its saga tasks and a real scheduler.

``wfe compensate`` records the request (run → COMPENSATING, actor ``user:<os user>``), then clears the
run's saga task instances the way Airflow's "clear" does, so Airflow's scheduler runs them again;
``saga__begin`` sees the manual request and compensates every step that succeeded. ``dag.test()``
has no scheduler to re-run cleared tasks, so this test runs the production path, as
``test_real_scheduler.py`` and ``test_saga_killed_compensation.py`` do (through the shared harness
``cluster.py``): api-server, dag-processor and scheduler with LocalExecutor on 127.0.0.1 in a
throw-away ``AIRFLOW_HOME``; the DAGs folder is a copy of ``tests/scenarios/manual``.

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
import subprocess
import time
from datetime import datetime
from typing import Any

import pytest
from cluster import Cluster, render_records

from airflow_wfe.adapters.saga.tasks import idempotency_key

DAG_ID = "wfe_t_saga_manual_compensation"
SAGA_TASKS = ["compensate__a", "compensate__b", "saga__begin", "saga__end"]
REASON = "rollback release 42"

#: Budget for the components to come up and the forward run to finish.
RUN_DEADLINE_S = 150.0
#: Budget for the scheduler to re-run the cleared saga tasks after `wfe compensate --force`.
COMPENSATION_DEADLINE_S = 120.0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.cluster("manual", deadline_s=RUN_DEADLINE_S, ledger=True),
]


def _ti_summary(tis: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{tid}={ti['state']}/try{ti['try_number']}" for tid, ti in sorted(tis.items())
    )


def _checked(cluster: Cluster, record: dict[str, Any] | None, check: Any, *args: Any) -> None:
    """Run ``check(*args)``; an AssertionError fails the test with the store and diagnostics."""
    store = render_records(record) if record is not None else "(not read)"
    cluster.verify(lambda: check(*args), f"--- wfe store:\n{store}")


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


def _wait_for_compensation(cluster: Cluster, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Airflow's run finished again and the wfe run concluded (or the deadline is reached)."""
    seen: list[str] = []

    def concluded() -> tuple[dict[str, Any], dict[str, Any]] | None:
        status, airflow_run = cluster.request("GET", cluster.run_path(DAG_ID, run_id))
        if status != 200:
            return None
        if not seen or seen[-1] != f"airflow {airflow_run.get('state')}":
            seen.append(f"airflow {airflow_run.get('state')}")
            cluster.mark(f"Airflow run state: {airflow_run.get('state')}")
        if airflow_run.get("state") not in ("success", "failed"):
            return None
        record = cluster.show_run(DAG_ID, run_id)
        if record["state"] in ("COMPENSATED", "COMPENSATION_FAILED"):
            return airflow_run, record
        return None

    return cluster.wait_until(  # type: ignore[no-any-return]
        "the scheduler to re-run the saga and the wfe run to conclude", concluded, interval=1.0
    )


def test_a_completed_run_is_compensated_by_hand_only_with_force(cluster: Cluster) -> None:
    cluster.login()
    run_id = cluster.trigger(DAG_ID)
    first = cluster.wait_run_finished(DAG_ID, run_id)
    cluster.mark(f"run finished in Airflow: {first['state']}")
    if first["state"] != "success":
        cluster.fail(f"the forward run ended {first['state']}, not success")

    # The run COMPLETED; the saga tasks skipped.
    completed = cluster.show_run(DAG_ID, run_id)
    tis_completed = cluster.task_instances(DAG_ID, run_id)
    cluster.mark(f"wfe: {completed['state']}; Airflow: {_ti_summary(tis_completed)}")
    _checked(cluster, completed, _check_completed, completed, tis_completed)

    # A run no one recorded: refused, before anything is looked up in Airflow.
    unknown = cluster.wfe("compensate", DAG_ID, "no-such-run")
    _checked(cluster, None, _check_unknown, unknown)

    # Without --force: refused, nothing changes (neither the store nor Airflow).
    refused = cluster.wfe("compensate", DAG_ID, run_id)
    cluster.mark(f"wfe compensate (no --force): exit {refused.returncode}")
    unchanged = cluster.show_run(DAG_ID, run_id)
    tis_unchanged = cluster.task_instances(DAG_ID, run_id)
    _checked(
        cluster,
        unchanged,
        _check_refused,
        refused,
        completed,
        unchanged,
        tis_completed,
        tis_unchanged,
        cluster.ledger_lines(),
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
    cleared_run = cluster.get(cluster.run_path(DAG_ID, run_id))
    cluster.mark(f"right after the request, Airflow's run is {cleared_run['state']}")

    cluster.set_deadline(COMPENSATION_DEADLINE_S)
    airflow_run, record = _wait_for_compensation(cluster, run_id)
    cluster.mark(
        f"compensation concluded {record['state']} {time.monotonic() - requested_at:.1f}s "
        f"after the request; Airflow's run {airflow_run['state']} (queued again at "
        f"{airflow_run.get('queued_at')}, start_date now {airflow_run.get('start_date')})"
    )
    tis = cluster.task_instances(DAG_ID, run_id)
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
        cluster.ledger_lines(),
        cluster.listener_complaints(),
    )

    # Compensated once is enough: a second request is refused, even with --force.
    again = cluster.wfe("compensate", DAG_ID, run_id, "--force")
    cluster.mark(f"second wfe compensate --force: exit {again.returncode}")
    final = cluster.show_run(DAG_ID, run_id)
    _checked(cluster, final, _check_second_refused, again, final)
    _checked(cluster, final, lambda: _check_unchanged(record, final))

    # `--json` is for programs: its stdout must be the JSON document alone (checked last, so a
    # stray log line does not hide how the rest of the scenario went).
    if noise:
        cluster.fail(
            "`wfe compensate --json` printed more than the JSON document on stdout "
            f"(log output belongs on stderr):\n{noise[0][:1500]}"
        )
