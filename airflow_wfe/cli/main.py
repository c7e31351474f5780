"""The ``wfe`` command: a thin face over the application layer (:mod:`airflow_wfe.app`).

Each handler calls one use case and prints its model: ``--json`` through the model's own
serialization, text through :mod:`airflow_wfe.cli.text`. Exit codes: 0 ok, 1 a finding or a failure
(run not found, store unavailable), 2 a usage error. Errors print one line on stderr; ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from airflow_wfe.app import runs
from airflow_wfe.app.compensate import compensate
from airflow_wfe.app.context import AppContext
from airflow_wfe.app.schema import schema_status, upgrade_schema
from airflow_wfe.cli.artifacts import add_artifact_commands
from airflow_wfe.cli.audit import add_audit_commands
from airflow_wfe.cli.metrics_commands import add_metrics_commands
from airflow_wfe.cli.policy_commands import add_governance_commands
from airflow_wfe.cli.spool import add_spool_commands
from airflow_wfe.cli.text import print_json, render_decisions, render_run, render_run_list
from airflow_wfe.cli.workflow_commands import add_workflow_commands
from airflow_wfe.config import get_settings
from airflow_wfe.exceptions import UsageError, WfeError
from airflow_wfe.version import __version__

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2
#: Output cut by a closed pipe (``wfe render F | head``): 128 + SIGPIPE, what a shell reports for a
#: program the signal ended, without Python's BrokenPipeError message.
EXIT_PIPE = 141


def _context() -> AppContext:
    return AppContext.from_process()


def _limit(text: str) -> int:
    """``--limit``: 0..MAX_LIMIT (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= runs.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {runs.MAX_LIMIT}, got {value}")
    return value


def _offset(text: str) -> int:
    """``--offset``: 0 or more (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def cmd_runs_list(args: argparse.Namespace) -> int:
    found = runs.list_runs(
        _context(), dag_id=args.dag_id, state=args.state, limit=args.limit, offset=args.offset
    )
    if args.json:
        print_json(found)
    else:
        print(render_run_list(found))
    return EXIT_OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    run = runs.run_detail(_context(), args.dag_id, args.run_id)
    if args.json:
        print_json(run)
    else:
        print("\n".join([render_run(run), *render_decisions(run.decisions)]))
    return EXIT_OK


def cmd_compensate(args: argparse.Namespace) -> int:
    outcome = compensate(_context(), args.dag_id, args.run_id, force=args.force, reason=args.reason)
    if args.json:
        print_json(outcome)
    else:
        print(
            f"Run {args.dag_id} / {args.run_id}: COMPENSATING ({outcome.reason}).\n"
            f"Cleared {', '.join(outcome.cleared)}: Airflow's scheduler runs them now; follow "
            f"with `wfe runs show {args.dag_id} {args.run_id}`."
        )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    done = upgrade_schema(get_settings(), args.revision)
    if done.before == done.after:
        print(f"State store {done.url} is already at revision {done.after}.")
    else:
        print(f"State store {done.url} upgraded: {done.before or '(empty)'} → {done.after}.")
    return EXIT_OK


def cmd_db_check(args: argparse.Namespace) -> int:
    status = schema_status(get_settings())
    if args.json:
        print_json(status)
    else:
        state = (
            "current" if status.current else f"needs `wfe db upgrade` (expected {status.expected})"
        )
        print(f"State store {status.url}: revision {status.revision or '(empty)'}, {state}.")
    return EXIT_OK if status.current else EXIT_FINDING


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo drives Airflow's own CLI and DagBag: only `wfe demo` pays for importing it.
    from airflow_wfe.cli.demo import run_demo

    return run_demo(dags_folder=args.dags_folder, serve=args.serve, port=args.port)


def cmd_doctor(args: argparse.Namespace) -> int:
    # Reads Airflow's plugins and providers: only `wfe doctor` pays for importing them.
    from airflow_wfe.cli.doctor import run_doctor

    return run_doctor(as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (also used by the docs and the tests)."""
    parser = argparse.ArgumentParser(
        prog="wfe",
        description="airflow-wfe: governed Airflow runs (state, compensation, gates, audit).",
    )
    parser.add_argument("--version", action="version", version=f"airflow-wfe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    runs_parser = commands.add_parser("runs", help="governed runs and their state histories")
    runs_commands = runs_parser.add_subparsers(
        dest="runs_command", metavar="COMMAND", required=True
    )
    listing = runs_commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("--dag-id", "--dag", dest="dag_id", help="only this DAG")
    listing.add_argument("--state", type=str.upper, help="only runs in this state (e.g. FAILED)")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    listing.add_argument("--offset", type=_offset, default=0, help="skip this many first")
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

    add_workflow_commands(commands)
    add_artifact_commands(commands)
    add_metrics_commands(commands)
    add_spool_commands(commands)
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
    demo.add_argument(
        "--dags-folder",
        default=None,
        help="folder of example DAGs (default: ./dags when it has wfe_example*.py files, else "
        "the examples installed with the package under <prefix>/share/airflow-wfe/dags)",
    )
    demo.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="exit after the report instead of serving Airflow",
    )
    demo.add_argument("--port", type=int, default=8080, help="UI port on 127.0.0.1")
    demo.set_defaults(handler=cmd_demo)

    doctor = commands.add_parser(
        "doctor",
        help="check this deployment: store, signing key, policies, plugin, provider, StatsD",
        description="One line per check (ok, FAIL, skip); exit 1 when any check fails. "
        "Run it on every machine (scheduler, workers, API server) to find the one that differs.",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(handler=cmd_doctor)
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
        code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so the interpreter's own
        # final flush does not print the error either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE
    except WfeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"wfe: error: {exc}", file=sys.stderr)
        # Bad arguments are refused by the parser itself (exit 2); a UsageError is what only a use
        # case can tell.
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FINDING
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract is: no traceback without --debug
        if args.debug:
            traceback.print_exc()
        from airflow_wfe.app.schema import unreadable_store

        store = unreadable_store(exc)
        if store is not None:
            print(f"wfe: error: {store}", file=sys.stderr)
            return EXIT_FINDING
        if not args.debug:
            print(
                f"wfe: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug)",
                file=sys.stderr,
            )
        return EXIT_FINDING


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
