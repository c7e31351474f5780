"""``wfe policy test`` and ``wfe cost``: what a gate would decide, and spending against budgets.

Thin handlers over :mod:`airflow_wfe.app.policies` and :mod:`airflow_wfe.app.costs`; bad ``--facts``
(not JSON, not an object, an unreadable ``@file``) is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from airflow_wfe.app import costs, policies
from airflow_wfe.app.context import AppContext
from airflow_wfe.cli.text import print_json, render_cost, render_policy_decision
from airflow_wfe.config import get_settings

__all__ = ["add_governance_commands"]

EXIT_OK = 0
EXIT_FINDING = 1


def _facts(raw: str) -> dict[str, Any]:
    try:
        return policies.parse_facts(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_policy_test(args: argparse.Namespace) -> int:
    if args.dag is not None:
        checks = policies.dry_run_dag_file(Path(args.dag))
        if args.json:
            print_json(checks)
        else:
            for check in checks.root:
                print(f"{check.dag_id or args.dag}: {check.outcome}")
                print("\n".join(f"  {problem}" for problem in check.problems))
        return EXIT_FINDING if any(c.outcome != "allow" for c in checks.root) else EXIT_OK
    # A dry run reads policy files only: no store, so no context to build.
    chosen = policies.load_policies(args.policy, get_settings().policy_path, stage=args.stage)
    decision = policies.dry_run(chosen, args.facts)
    if args.json:
        print_json(decision)
    else:
        print(render_policy_decision(decision))
    return EXIT_OK


def cmd_cost(args: argparse.Namespace) -> int:
    rows = costs.cost_by_dag(AppContext.from_process(), dag_id=args.dag_id)
    if args.json:
        print_json(rows)
    else:
        print(render_cost(rows))
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
    test.add_argument(
        "--stage",
        choices=("gate", "start"),
        default="gate",
        help="with no policy named: those a gate takes (default), or the start (pre-flight) ones",
    )
    test.add_argument(
        "--dag",
        metavar="FILE",
        help="parse a DAG file and dry-run the parse-stage policies (and parse_time_checks) on it",
    )
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_policy_test)

    cost = commands.add_parser("cost", help="what DAGs spent (cost ledger) against their budgets")
    cost.add_argument("--dag", "--dag-id", dest="dag_id")
    cost.add_argument("--json", action="store_true")
    cost.set_defaults(handler=cmd_cost)
