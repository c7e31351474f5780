"""Pre-flight under a real scheduler: the DAG-run hook runs the checks before any task is queued.

A start policy (``stages: [start]``) freezes ``wfe_example_success``; the run triggered through the
REST API is REJECTED by the scheduler at its pre-flight, the decision is recorded, the first task's
forked process refuses to execute (failed, one try, no retry masking it), and ``wfe runs show``
tells it as one story. The shipped YAML release (``budget: {per_run: 50, per_month: 400}``) whose
month the ledger shows already spent is REJECTED there too, the budget named: the scheduler reads it
from the serialized DAG's ``default_args``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster import Cluster

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore

REPO = Path(__file__).resolve().parents[2]
DAG = "wfe_example_success"
YAML_RELEASE = "wfe_example_yaml_release"

FREEZE = """
name: freeze-success
version: "1"
stages: [start]
applies_to: {dags: [wfe_example_success]}
rules:
  - id: incident-freeze
    kind: change_window
    freeze: [{start: 2000-01-01T00:00:00, end: 2999-01-01T00:00:00, reason: incident freeze}]
"""

#: A parse-stage policy refusing the other example: the DAG processor's parsing child evaluates it
#: (an import error in Airflow) and records the decision once, however often it re-parses.
PARSE_REFUSAL = """
name: no-retry-example
stages: [parse]
applies_to: {dags: [wfe_example_retry_fail]}
rules:
  - id: never
    when: 'dag.tasks.exists(t, t.retries > 0)'
    decision: deny
    reason: retried steps are not allowed here
"""

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]


def test_the_scheduler_rejects_a_run_at_pre_flight_and_no_step_runs(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "freeze.yaml").write_text(FREEZE)
    (policies / "parse.yaml").write_text(PARSE_REFUSAL)
    env = {"AIRFLOW__WFE__POLICY_PATH": str(policies)}
    with Cluster.running(tmp_path, dags=REPO / "dags", deadline_s=180.0, extra_env=env) as cluster:
        cluster.login()
        run_id = cluster.trigger(DAG)
        dag_run = cluster.wait_run_finished(DAG, run_id)
        assert dag_run["state"] == "failed"
        tis = cluster.task_instances(DAG, run_id)
        assert tis["extract"]["state"] == "failed"
        assert tis["extract"]["try_number"] == 1  # refused for good: no retry masks it
        assert tis["load"]["state"] == "upstream_failed"

        record = cluster.show_run(DAG, run_id)
        assert record["state"] == "REJECTED"
        assert [(t["from_state"], t["to_state"], t["actor"]) for t in record["transitions"]] == [
            (None, "CREATED", "scheduler"),
            ("CREATED", "REJECTED", "scheduler"),
        ]
        reason = record["transitions"][-1]["reason"]
        assert reason.startswith("pre-flight refused the run: definition ok: ")
        assert "freeze-success/incident-freeze: incident freeze" in reason
        decisions = record["decisions"]
        assert [(d["kind"], d["outcome"], d["step_id"]) for d in decisions] == [
            ("preflight", "deny", "pre-flight")
        ]
        assert not [s for s in record["steps"] if s["state"] in ("RUNNING", "SUCCEEDED")]
        extract = next(s for s in record["steps"] if s["step_id"] == "extract")
        assert extract["state"] == "SKIPPED"
        assert [t["actor"] for t in extract["transitions"]] == ["worker", "worker"]

        text = cluster.wfe("runs", "show", DAG, run_id)
        assert "REJECTED" in text.stdout
        assert "pre-flight refused the run" in text.stdout
        assert "preflight" in text.stdout

        # The parse-stage policy ran in the DAG processor: an import error naming the rule ...
        errors = cluster.get("/api/v2/importErrors")["import_errors"]
        (refused,) = [e for e in errors if e["filename"].endswith("wfe_example_retry_fail.py")]
        assert "policy 'no-retry-example' rule 'never'" in refused["stack_trace"]
        # ... and its decision is in the trail once (the file is parsed again and again).
        audit = cluster.wfe("audit", "export", "--dag", "wfe_example_retry_fail", "--no-sync")
        lines = [json.loads(line) for line in audit.stdout.splitlines() if line.strip()]
        events = [e for e in lines if e.get("type") == "policy.decision"]
        assert len(events) == 1, events
        assert events[0]["payload"]["stage"] == "parse"
        assert events[0]["payload"]["outcome"] == "deny"

        # The YAML workflow's own budget, with this month's spending already past it.
        store = SqlStore(cluster.env["AIRFLOW__WFE__STORE_CONN"])
        Recorder(store, NullEmitter()).start_run(
            YAML_RELEASE, "earlier", actor="worker", reason="an earlier run"
        )
        store.record_cost(YAML_RELEASE, "earlier", "release", 400.5)
        spent_run = cluster.trigger(YAML_RELEASE)
        assert cluster.wait_run_finished(YAML_RELEASE, spent_run)["state"] == "failed"
        refused_run = cluster.show_run(YAML_RELEASE, spent_run)
        assert refused_run["state"] == "REJECTED"
        assert [t["actor"] for t in refused_run["transitions"]] == ["scheduler", "scheduler"]
        assert (
            f"{YAML_RELEASE}-budget/per-month: budget dag_month would be exceeded: spent 400.50"
            in refused_run["transitions"][-1]["reason"]
        )
        assert not [s for s in refused_run["steps"] if s["state"] in ("RUNNING", "SUCCEEDED")]
        assert store.spent(YAML_RELEASE, spent_run)["run"] == 0.0
