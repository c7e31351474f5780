"""``wfe policy test`` and ``wfe cost``: what a gate would decide, and spending against budgets."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_governance_commands"]

EXIT_OK = 0


def _facts(raw: str) -> dict[str, Any]:
    text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
    try:
        facts = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--facts is not JSON: {exc}") from None
    if not isinstance(facts, dict):
        raise argparse.ArgumentTypeError("--facts must be a JSON object")
    return facts


def _policies(names: list[str]) -> list[Any]:
    """Policy files given by path, plus those named (or, with no argument, all) in policy_path."""
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.policy import load_policy_file, load_policy_folder, select

    chosen = [load_policy_file(Path(n)) for n in names if Path(n).is_file()]
    named = [n for n in names if not Path(n).is_file()]
    if named or not names:
        chosen += select(load_policy_folder(get_settings().policy_path), named)
    return chosen


def cmd_policy_test(args: argparse.Namespace) -> int:
    from airflow_wfe.core.policy import evaluate

    facts = dict(args.facts)
    now = facts.get("now")
    if isinstance(now, str):
        facts["now"] = datetime.fromisoformat(now.replace("Z", "+00:00"))
    facts.setdefault("now", datetime.now(UTC))
    # A dry run starts from an empty ledger: what the facts do not say was spent is 0.
    cost = dict(facts.get("cost") or {})
    spent = {"run": 0.0, "dag_day": 0.0, "dag_month": 0.0, "tag_day": {}, "tag_month": {}}
    spent.update(cost.get("spent") or {})
    facts["cost"] = {"reserve": 0.0, **cost, "spent": spent}
    decision = evaluate(_policies(args.policy), facts)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
        return EXIT_OK
    print(f"decision: {decision.outcome.value}")
    for name, version in sorted(decision.policies.items()):
        print(f"  policy {name} (version {version})")
    for reason in decision.reasons:
        print(f"  {reason.outcome.value:<15} {reason.policy}/{reason.rule}: {reason.message}")
    if decision.approval is not None:
        a = decision.approval
        who = ", ".join(a.approvers) or "any user"
        print(f"  approval: {a.required} of {who}; triggerer excluded: {a.exclude_triggerer}")
    return EXIT_OK


def _budgets(dag_id: str, policies: list[Any]) -> dict[str, float]:
    from airflow_wfe.core.policy.models import BudgetRule

    limits: dict[str, float] = {}
    for loaded in policies:
        if not loaded.applies(dag_id, ()):
            continue
        for rule in loaded.policy.rules:
            if isinstance(rule, BudgetRule) and rule.tag is None:
                scope = rule.scope.value
                limits[scope] = min(limits.get(scope, rule.limit), rule.limit)
    return limits


def cmd_cost(args: argparse.Namespace) -> int:
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.policy import load_policy_folder
    from airflow_wfe.engine.harness import get_runtime_store
    from airflow_wfe.store.decisions import cost_by_dag

    rows = cost_by_dag(get_runtime_store(), dag_id=args.dag_id)
    policies = load_policy_folder(get_settings().policy_path)
    for row in rows:
        row["budgets"] = _budgets(row["dag_id"], policies)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("No costs recorded in the last 30 days.")
        return EXIT_OK
    print(f"{'DAG_ID':<32} {'TODAY':>10} {'MONTH':>10} {'30 DAYS':>10} {'PER RUN':>9}  BUDGETS")
    for row in rows:
        budgets = row["budgets"]
        shown = []
        for scope, spent_key in (("dag_day", "today"), ("dag_month", "month"), ("run", None)):
            if scope in budgets:
                used = f"{row[spent_key]:.2f}/" if spent_key else "max "
                shown.append(f"{scope} {used}{budgets[scope]:.2f}")
        print(
            f"{row['dag_id']:<32} {row['today']:>10.2f} {row['month']:>10.2f} "
            f"{row['last_30_days']:>10.2f} {row['per_run_30_days']:>9.2f}  "
            f"{', '.join(shown) or '-'} {row['currency']}"
        )
    return EXIT_OK


def add_governance_commands(commands: Any) -> None:
    """Attach ``policy`` and ``cost`` to the ``wfe`` parser."""
    policy = commands.add_parser("policy", help="organization policies")
    sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    test = sub.add_parser("test", help="what a gate would decide on these facts (a dry run)")
    test.add_argument(
        "policy", nargs="*", help="policy files or names in [wfe] policy_path (default: all)"
    )
    test.add_argument(
        "--facts",
        type=_facts,
        default={},
        help='JSON object (or @file): {"run": {...}, "step": {...}, "cost": {...}, "now": ...}',
    )
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_policy_test)

    cost = commands.add_parser("cost", help="what DAGs spent (cost ledger) against their budgets")
    cost.add_argument("--dag", "--dag-id", dest="dag_id")
    cost.add_argument("--json", action="store_true")
    cost.set_defaults(handler=cmd_cost)
