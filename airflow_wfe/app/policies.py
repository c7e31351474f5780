"""Policy dry runs: what a gate would decide on given facts, without a run or a store.

Used by ``wfe policy test`` and by :func:`airflow_wfe.testing.dry_run_policy`, so a policy is tested
the way a gate evaluates it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_wfe.app.models.governance import (
    ApprovalRequirement,
    DagPolicyCheck,
    DagPolicyChecks,
    PolicyDecision,
    PolicyReason,
)
from airflow_wfe.core.policy import (
    Decision,
    LoadedPolicy,
    evaluate,
    load_policy_file,
    load_policy_set,
)

__all__ = ["decision_model", "dry_run", "load_policies", "parse_facts"]


def parse_facts(raw: str) -> dict[str, Any]:
    """Facts given as a JSON object, or ``@file`` naming a file that holds one.

    Raises:
        ValueError: the file cannot be read, the text is not JSON, not an object, or its ``now``
            is not a date/time (a face reports it as a usage error).
    """
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--facts: cannot read {raw[1:]}: {exc.strerror or exc}") from None
    else:
        text = raw
    try:
        facts = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--facts is not JSON: {exc}") from None
    if not isinstance(facts, dict):
        raise ValueError("--facts must be a JSON object")
    now = facts.get("now")
    if isinstance(now, str):
        try:
            datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"--facts: now is not an ISO 8601 date/time: {now!r}") from None
    return facts


def load_policies(
    names: Sequence[str], policy_path: Path, *, stage: str = "gate"
) -> list[LoadedPolicy]:
    """Policy files given by path, plus those named in ``policy_path``; with no name, those a
    ``stage`` takes: every gate-stage policy (``gate``), or every ``start`` (pre-flight) one.

    Raises:
        SpecError: a policy file is invalid.
        PolicyError: a name is not among the policies of ``policy_path``, or (no name) a file is
            broken.
    """
    from airflow_wfe.core.policy.models import Stage

    chosen = [load_policy_file(Path(n)) for n in names if Path(n).is_file()]
    named = [n for n in names if not Path(n).is_file()]
    if named or not names:
        found = load_policy_set(policy_path)
        if not names and Stage(stage) is Stage.START:
            found.strict()  # every file must load: a broken one may be a start policy
            chosen += found.for_stage(Stage.START)
        else:
            chosen += found.select(named)
    return chosen


def decision_model(decision: Decision) -> PolicyDecision:
    """A core decision as the response model."""
    approval = decision.approval
    return PolicyDecision(
        decision=decision.outcome.value,
        reasons=[
            PolicyReason(
                policy=r.policy,
                version=r.version,
                rule=r.rule,
                outcome=r.outcome.value,
                message=r.message,
            )
            for r in decision.reasons
        ],
        policies=dict(decision.policies),
        approval=None
        if approval is None
        else ApprovalRequirement(
            approvers=list(approval.approvers),
            required=approval.required,
            exclude_triggerer=approval.exclude_triggerer,
            timeout_s=approval.timeout_s,
            on_timeout=approval.on_timeout,
            escalate_after_s=approval.escalate_after_s,
            escalate_to=list(approval.escalate_to),
        ),
    )


def dry_run(policies: Sequence[LoadedPolicy], facts: Mapping[str, Any]) -> PolicyDecision:
    """Evaluate ``policies`` on ``facts`` as a gate would, from an empty cost ledger.

    ``facts["now"]`` may be an ISO 8601 string (default: now); what ``facts["cost"]["spent"]`` does
    not say was spent is 0.

    Raises:
        PolicyError: a rule cannot be evaluated on these facts (gates fail closed on it too).
    """
    given = dict(facts)
    now = given.get("now")
    if isinstance(now, str):
        given["now"] = datetime.fromisoformat(now.replace("Z", "+00:00"))
    given.setdefault("now", datetime.now(UTC))
    cost = dict(given.get("cost") or {})
    spent: dict[str, Any] = {
        "run": 0.0,
        "dag_day": 0.0,
        "dag_month": 0.0,
        "tag_day": {},
        "tag_month": {},
    }
    spent.update(cost.get("spent") or {})
    given["cost"] = {"reserve": 0.0, **cost, "spent": spent}
    return decision_model(evaluate(policies, given))


def dry_run_dag_file(path: Path) -> DagPolicyChecks:
    """Parse a DAG file as Airflow does and say what the parse-time policies (and the built-in
    ``[wfe] parse_time_checks``) decide for each DAG in it, recording nothing (a dry run).

    Raises:
        UsageError: ``path`` is not a file.
    """
    from airflow_wfe.exceptions import UsageError

    if not path.is_file():
        raise UsageError(f"--dag {path}: no such file")
    from airflow.dag_processing.dagbag import DagBag

    from airflow_wfe.adapters import cluster_policy

    cluster_policy.DRY_RUN = {}
    try:
        # Airflow logs its parsing to stdout, which holds this command's output (JSON).
        with contextlib.redirect_stdout(sys.stderr):
            bag = DagBag(dag_folder=str(path))
        found = dict(cluster_policy.DRY_RUN)
    finally:
        cluster_policy.DRY_RUN = None
    checks = [
        DagPolicyCheck(dag_id=dag_id, outcome="deny" if problems else "allow", problems=problems)
        for dag_id, problems in sorted(found.items())
    ]
    checks += [
        DagPolicyCheck(dag_id=dag_id, outcome="allow", problems=[])
        for dag_id in sorted(set(bag.dag_ids) - set(found))
    ]
    checks += [
        DagPolicyCheck(dag_id=None, outcome="deny", problems=[str(error).strip()])
        for error in bag.import_errors.values()
    ]
    return DagPolicyChecks(checks)
