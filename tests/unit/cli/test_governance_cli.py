"""``wfe policy test``, ``wfe cost`` and the decisions in ``wfe runs show``: real processes, a real
store written through the recorder and the store contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store.contract import Store
from airflow_wfe.testing import temporary_store

WFE = str(Path(sys.executable).parent / "wfe")
POLICY = """
name: llm
version: "3"
rules:
  - {id: per-run, kind: budget, scope: run, limit: 10}
  - {id: per-day, kind: budget, scope: dag_day, limit: 25}
  - id: prod
    when: 'run.params.env == "prod"'
    decision: needs_approval
    reason: production needs a person
"""


def _wfe(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__WFE__STORE_CONN": url,
        "AIRFLOW__WFE__POLICY_PATH": str(home / "policies"),
    }
    return subprocess.run(
        [WFE, *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "llm.yaml").write_text(POLICY)
    return tmp_path


def test_policy_test_shows_what_a_gate_would_decide(home: Path) -> None:
    facts = {
        "run": {"dag_id": "gen", "params": {"env": "prod"}},
        "cost": {"reserve": 4, "spent": {"run": 7, "dag_day": 7}},
    }
    result = _wfe(
        home, f"sqlite:///{home}/wfe.db", "policy", "test", "llm", "--facts", json.dumps(facts)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "decision: deny"
    assert (
        "deny            llm/per-run: budget run would be exceeded: spent 7.00 + reserved 4.00 of 10.00 USD"
        in result.stdout
    )
    assert "needs_approval  llm/prod: production needs a person" in result.stdout
    dev = json.dumps({"run": {"dag_id": "gen", "params": {"env": "dev"}}})
    as_json = _wfe(home, f"sqlite:///{home}/wfe.db", "policy", "test", "--json", "--facts", dev)
    decision = json.loads(as_json.stdout)
    assert decision["decision"] == "allow"
    assert decision["policies"]["llm"].startswith("3+")


def test_policy_test_fails_closed_on_a_missing_fact(home: Path) -> None:
    result = _wfe(home, f"sqlite:///{home}/wfe.db", "policy", "test", "--facts", "{}")
    assert result.returncode == 1
    assert "policy 'llm' rule 'prod' (" in result.stderr
    assert "llm.yaml): cannot evaluate" in result.stderr


def test_policy_test_reports_a_broken_file_with_its_line(home: Path) -> None:
    (home / "policies" / "bad.yaml").write_text(
        "name: bad\nrules:\n  - {id: x, kind: budget, scope: year, limit: 1}\n"
    )
    result = _wfe(home, f"sqlite:///{home}/wfe.db", "policy", "test")
    assert result.returncode == 1
    assert "bad.yaml:3: rules[0].scope: expected 'run'" in result.stderr
    assert "Traceback" not in result.stderr


def _write_spending(store: Store, recorder: Recorder) -> None:
    recorder.run_started("gen", "r1", actor="scheduler", reason="go")
    store.record_cost("gen", "r1", "generate", 6.5, detail="32,500 tokens")
    store.record_cost("gen", "r1", "images", 2.0)
    store.record_decision(
        "gen",
        "r1",
        "gate",
        kind="policy",
        outcome="needs_approval",
        reasons=[
            {
                "policy": "llm",
                "version": "3+abc",
                "rule": "prod",
                "outcome": "needs_approval",
                "message": "production needs a person",
            }
        ],
        policies={"llm": "3+abc"},
        actor="gate:gate",
    )
    store.record_decision(
        "gen", "r1", "gate", kind="approval", outcome="approved",
        reasons=[{"message": "approved by alice"}], policies={"llm": "3+abc"},
        actor="user:alice", details={"comment": "fine", "answer": "approved"},
    )  # fmt: skip


def test_cost_and_decisions_in_runs_show(home: Path) -> None:
    with temporary_store(home) as ctx:
        _write_spending(ctx.store, ctx.recorder)
        url = ctx.settings.store_conn

    cost = _wfe(home, url, "cost", "--json")
    assert cost.returncode == 0, cost.stderr
    (row,) = json.loads(cost.stdout)
    assert (row["dag_id"], row["today"], row["runs_30_days"]) == ("gen", 8.5, 1)
    assert row["budgets"] == {"run": 10.0, "dag_day": 25.0}
    table = _wfe(home, url, "cost")
    assert "dag_day 8.50/25.00, run max 10.00 USD" in table.stdout

    shown = _wfe(home, url, "runs", "show", "gen", "r1", "--json")
    decisions = json.loads(shown.stdout)["decisions"]
    assert [(d["kind"], d["outcome"], d["actor"]) for d in decisions] == [
        ("policy", "needs_approval", "gate:gate"),
        ("approval", "approved", "user:alice"),
    ]
    assert decisions[0]["policies"] == {"llm": "3+abc"}
    assert decisions[1]["comment"] == "fine"
    text = _wfe(home, url, "runs", "show", "gen", "r1").stdout
    assert "gate: policy NEEDS_APPROVAL  by gate:gate  (policies: llm 3+abc)" in text
    assert "needs_approval: production needs a person  [llm/prod]" in text
    assert "comment: fine" in text
    story = _wfe(home, url, "audit", "show", "gen", "r1", "--no-sync").stdout
    assert "cost of generate: 6.50 USD (32,500 tokens)" in story
    assert "gate gate: NEEDS_APPROVAL: production needs a person (policies: llm 3+abc)" in story
    assert 'approval at gate: approved: approved by alice "fine"' in story
