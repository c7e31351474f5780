"""The ``wfe`` command: a thin shell over the store and the recorder.

Exit codes: 0 ok, 1 a finding or a failure (run not found, store unavailable), 2 a usage error.
Errors print one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from airflow_wfe.exceptions import WfeError
from airflow_wfe.version import __version__

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _store() -> Any:
    from airflow_wfe.engine.harness import get_runtime_store

    return get_runtime_store()


def cmd_runs_list(args: argparse.Namespace) -> int:
    from airflow_wfe.cli.text import render_run_list
    from airflow_wfe.core.records import to_jsonable

    runs = _store().list_runs(
        dag_id=args.dag_id, state=args.state, limit=args.limit, offset=args.offset
    )
    if args.json:
        _print_json([to_jsonable(run) for run in runs])
    else:
        print(render_run_list(runs))
    return EXIT_OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    from airflow_wfe.cli.text import (
        compensations,
        decision_items,
        render_decisions,
        render_run,
    )
    from airflow_wfe.core.records import to_jsonable
    from airflow_wfe.store.decisions import decisions

    store = _store()
    run = store.get_run(args.dag_id, args.run_id)
    found = decisions(store, args.dag_id, args.run_id)
    if args.json:
        _print_json(
            {
                **to_jsonable(run),
                "compensations": compensations(run),
                "decisions": decision_items(found),
            }
        )
    else:
        print("\n".join([render_run(run), *render_decisions(found)]))
    return EXIT_OK


def cmd_compensate(args: argparse.Namespace) -> int:
    from airflow_wfe.adapters.saga.manual import request_compensation

    outcome = request_compensation(args.dag_id, args.run_id, force=args.force, reason=args.reason)
    if args.json:
        _print_json(outcome)
    else:
        print(
            f"Run {args.dag_id} / {args.run_id}: COMPENSATING ({outcome['reason']}).\n"
            f"Cleared {', '.join(outcome['cleared'])}: Airflow's scheduler runs them now; follow "
            f"with `wfe runs show {args.dag_id} {args.run_id}`."
        )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from airflow_wfe.config import get_settings
    from airflow_wfe.store.engine import masked_url
    from airflow_wfe.store.schema import upgrade

    url = get_settings().store_conn
    before, after = upgrade(url, args.revision)
    if before == after:
        print(f"State store {masked_url(url)} is already at revision {after}.")
    else:
        print(f"State store {masked_url(url)} upgraded: {before or '(empty)'} → {after}.")
    return EXIT_OK


def cmd_db_check(args: argparse.Namespace) -> int:
    from airflow_wfe.config import get_settings
    from airflow_wfe.store.engine import get_engine, masked_url
    from airflow_wfe.store.schema import HEAD_REVISION, current_revision

    url = get_settings().store_conn
    found = current_revision(get_engine(url))
    current = found == HEAD_REVISION
    if args.json:
        _print_json(
            {
                "url": masked_url(url),
                "revision": found,
                "expected": HEAD_REVISION,
                "current": current,
            }
        )
    else:
        state = "current" if current else f"needs `wfe db upgrade` (expected {HEAD_REVISION})"
        print(f"State store {masked_url(url)}: revision {found or '(empty)'}, {state}.")
    return EXIT_OK if current else EXIT_FINDING


def cmd_demo(args: argparse.Namespace) -> int:
    from airflow_wfe.cli.demo import run_demo

    return run_demo(dags_folder=args.dags_folder, serve=args.serve, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (also used by the docs and the tests)."""
    parser = argparse.ArgumentParser(
        prog="wfe",
        description="airflow-wfe: governed Airflow runs (state, compensation, gates, audit).",
    )
    parser.add_argument("--version", action="version", version=f"airflow-wfe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    runs = commands.add_parser("runs", help="governed runs and their state histories")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    listing = runs_commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("--dag-id", "--dag", dest="dag_id", help="only this DAG")
    listing.add_argument("--state", type=str.upper, help="only runs in this state (e.g. FAILED)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many first")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_runs_list)
    show = runs_commands.add_parser("show", help="one run: every transition and every step")
    show.add_argument("dag_id")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=cmd_runs_show)

    compensate = commands.add_parser(
        "compensate", help="undo a failed run's succeeded steps through its saga tasks"
    )
    compensate.add_argument("dag_id")
    compensate.add_argument("run_id")
    compensate.add_argument(
        "--force", action="store_true", help="also compensate a run that COMPLETED"
    )
    compensate.add_argument("--reason", help="why, recorded with the request")
    compensate.add_argument("--json", action="store_true", help="print the request as JSON")
    compensate.set_defaults(handler=cmd_compensate)

    from airflow_wfe.cli.artifacts import add_artifact_commands
    from airflow_wfe.cli.audit import add_audit_commands
    from airflow_wfe.cli.policy_commands import add_governance_commands
    from airflow_wfe.cli.workflow_commands import add_workflow_commands

    add_workflow_commands(commands)
    add_artifact_commands(commands)

    from airflow_wfe.cli.metrics_commands import add_metrics_commands

    add_metrics_commands(commands)
    add_audit_commands(commands)
    add_governance_commands(commands)

    db = commands.add_parser("db", help="the state store's schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    up = db_commands.add_parser("upgrade", help="migrate the state store to this version")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(handler=cmd_db_upgrade)
    check = db_commands.add_parser("check", help="exit 1 when the store needs `wfe db upgrade`")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_db_check)

    demo = commands.add_parser(
        "demo", help="run the example DAGs through Airflow, print their histories, serve the UI"
    )
    demo.add_argument("--dags-folder", default="dags", help="folder of example DAGs")
    demo.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="exit after the report instead of serving Airflow",
    )
    demo.add_argument("--port", type=int, default=8080, help="UI port on 127.0.0.1")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wfe`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # The recorder's transition lines belong in Airflow's component logs; Airflow's logging
        # writes to stdout, where they would corrupt a command's output (e.g. `--json`).
        logging.getLogger("airflow_wfe").setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except WfeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"wfe: error: {exc}", file=sys.stderr)
        return EXIT_FINDING
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract is: no traceback without --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"wfe: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug)",
                file=sys.stderr,
            )
        return EXIT_FINDING


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
