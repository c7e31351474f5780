"""Parse-time policies from policy files (``stages: [parse]``), through Airflow's own DAG parsing
(DagBag and the cluster policy entry point): each refusal an import error naming the rule, each
outcome an audited decision recorded once per DAG version, and ``wfe policy test --dag`` a dry run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime", "airflow_db")]

POLICY = """
name: payments-rules
version: "2"
stages: [parse]
applies_to: {tags: [payments]}
rules:
  - id: side-effects-compensated
    when: 'dag.tasks.exists(t, t.side_effects && !t.compensated && !t.irreversible)'
    decision: deny
    reason: every step with side effects declares a compensation
  - id: timeouts
    when: 'dag.tasks.exists(t, t.execution_timeout == 0.0)'
    decision: deny
    reason: every step has an execution_timeout
"""

REFUSED = """
from datetime import datetime, timedelta
from airflow.sdk import DAG, task
from airflow_wfe.adapters.saga.declare import side_effects

with DAG(dag_id="wfe_pp_refused", start_date=datetime(2026, 1, 1), schedule=None,
         tags=["wfe", "payments"], default_args={"execution_timeout": timedelta(minutes=1)}):
    @task
    def pay() -> None: ...

    side_effects(pay())
"""

ALLOWED = """
from datetime import datetime, timedelta
from airflow.sdk import DAG, task
from airflow_wfe import compensate

def refund(result, idempotency_key): ...

with DAG(dag_id="wfe_pp_allowed", start_date=datetime(2026, 1, 1), schedule=None,
         tags=["wfe", "payments"], default_args={"execution_timeout": timedelta(minutes=TIMEOUT)}):
    @task
    def pay() -> str:
        return "p1"

    compensate(pay(), refund)
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "payments.yaml").write_text(POLICY)
    monkeypatch.setenv("AIRFLOW__WFE__POLICY_PATH", str(policies))
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{tmp_path}/wfe.db")
    reset_runtime()
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "refused.py").write_text(textwrap.dedent(REFUSED))
    (folder / "allowed.py").write_text(textwrap.dedent(ALLOWED).replace("TIMEOUT", "5"))
    return folder


def _bag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def _parse_decisions(dag_id: str) -> list[Any]:
    return [
        e
        for e in get_runtime_store().audit_events(dag_id=dag_id, types=["policy.decision"])
        if (e.step_id or "").startswith("parse:")
    ]


def test_a_parse_policy_refuses_a_dag_naming_the_rule_and_records_once_per_version(
    setup: Path,
) -> None:
    bag = _bag(setup)
    assert "wfe_pp_allowed" in bag.dag_ids
    assert "wfe_pp_refused" not in bag.dag_ids
    (error,) = [e for f, e in bag.import_errors.items() if f.endswith("refused.py")]
    assert "DAG 'wfe_pp_refused' breaks airflow-wfe's parse-time policies" in error
    assert "policy 'payments-rules' rule 'side-effects-compensated'" in error
    assert "payments.yaml" in error
    assert "every step with side effects declares a compensation" in error
    assert "rule 'timeouts'" not in error

    _bag(setup)  # parsed again: same versions, nothing new recorded
    (refused,) = [e.content() for e in _parse_decisions("wfe_pp_refused")]
    assert refused["payload"]["outcome"] == "deny"
    assert refused["payload"]["stage"] == "parse"
    assert refused["versions"]["policy:payments-rules"].startswith("2+")
    (allowed,) = [e.content() for e in _parse_decisions("wfe_pp_allowed")]
    assert allowed["payload"]["outcome"] == "allow"

    # A new version of the DAG gets its own decision.
    (setup / "allowed.py").write_text(textwrap.dedent(ALLOWED).replace("TIMEOUT", "7"))
    _bag(setup)
    assert len(_parse_decisions("wfe_pp_allowed")) == 2


def test_parse_time_checks_keep_working_beside_parse_policies(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__PARSE_TIME_CHECKS", "retries")
    reset_runtime()
    bag = _bag(setup)
    (error,) = [e for f, e in bag.import_errors.items() if f.endswith("allowed.py")]
    assert "parse_time_checks = retries" in error


def test_wfe_policy_test_dag_dry_runs_the_parse_policies(setup: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_wfe.cli.main",
            "policy",
            "test",
            "--dag",
            str(setup / "refused.py"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    (check,) = json.loads(proc.stdout)
    assert (check["dag_id"], check["outcome"]) == ("wfe_pp_refused", "deny")
    assert check["problems"][0].startswith(
        "policy 'payments-rules' rule 'side-effects-compensated'"
    )
    assert _parse_decisions("wfe_pp_refused") == []  # a dry run records nothing
