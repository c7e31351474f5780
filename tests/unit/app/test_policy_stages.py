"""``wfe policy test --stage start`` dry-runs the pre-flight's policies; with no stage, a gate's."""

from __future__ import annotations

from pathlib import Path

from airflow_wfe.app.policies import dry_run, load_policies

START = """
name: freeze
stages: [start]
rules:
  - id: year-end
    kind: change_window
    freeze: [{start: 2026-12-20T00:00:00, end: 2027-01-04T00:00:00, reason: year-end freeze}]
"""
GATE = """
name: prod
rules:
  - {id: prod, when: 'run.params.env == "prod"', decision: needs_approval, reason: a person}
"""


def test_the_start_stage_takes_start_policies_only(tmp_path: Path) -> None:
    (tmp_path / "freeze.yaml").write_text(START)
    (tmp_path / "prod.yaml").write_text(GATE)
    start = load_policies([], tmp_path, stage="start")
    assert [p.policy.name for p in start] == ["freeze"]
    assert [p.policy.name for p in load_policies([], tmp_path)] == ["prod"]
    decision = dry_run(start, {"run": {"dag_id": "d"}, "now": "2026-12-24T10:00:00Z"})
    assert decision.decision == "deny"
    assert decision.reasons[0].message.startswith("year-end freeze: frozen until")
    later = dry_run(start, {"run": {"dag_id": "d"}, "now": "2027-01-05T10:00:00Z"})
    assert later.decision == "allow"
