"""The ``wfe`` command: a thin face over the application layer (:mod:`airflow_wfe.app`).

Each handler calls one use case and prints its model in the ``-o table|json|yaml|plain`` format
(:mod:`airflow_wfe.cli.output`; text views in :mod:`airflow_wfe.cli.text`). Exit codes: 0 ok, 1 a
finding or a failure (run not found, store unavailable), 2 a usage error, 130 interrupted, 141 a
closed output pipe. Errors print one line on stderr; ``--debug`` adds the traceback. Only the module
of the command being run is imported (:mod:`airflow_wfe.cli.commands`), so a command starts fast.
"""

# PYTHON_ARGCOMPLETE_OK  (argcomplete: this entry point completes its own arguments)
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from airflow_wfe.app import runs
from airflow_wfe.app.context import AppContext
from airflow_wfe.cli.commands import registrar, registrars
from airflow_wfe.cli.output import (
    EXIT_CODES,
    add_command,
    add_output_option,
    emit,
    examples_epilog,
)
from airflow_wfe.cli.text import render_decisions, render_run, timestamp
from airflow_wfe.config import get_settings
from airflow_wfe.exceptions import UsageError, WfeError
from airflow_wfe.version import __version__

if TYPE_CHECKING:
    from airflow_wfe.app.models import RunList

__all__ = ["add_run_commands", "add_store_commands", "build_parser", "main", "run_from_airflow"]

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


def _run_rows(found: RunList) -> tuple[list[str], list[list[object]]]:
    header = ["dag_id", "run_id", "state", "run_type", "updated_at"]
    body: list[list[object]] = [
        [r.dag_id, r.run_id, r.state, r.run_type, timestamp(r.updated_at)] for r in found.root
    ]
    return header, body


def cmd_runs_list(args: argparse.Namespace) -> int:
    found = runs.list_runs(
        _context(), dag_id=args.dag_id, state=args.state, limit=args.limit, offset=args.offset
    )
    emit(args.output, found, rows=lambda: _run_rows(found), empty="No governed runs recorded yet.")
    return EXIT_OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    run = runs.run_detail(_context(), args.dag_id, args.run_id)
    if args.format is not None:
        # A picture of the run (its timeline), to a file or stdout.
        from airflow_wfe.cli.pictures import run_timeline_picture

        run_timeline_picture(run, args.format, args.to)
        return EXIT_OK
    emit(
        args.output,
        run,
        text=lambda: "\n".join([render_run(run), *render_decisions(run.decisions)]),
    )
    return EXIT_OK


def cmd_compensate(args: argparse.Namespace) -> int:
    from airflow_wfe.app.compensate import compensate

    outcome = compensate(_context(), args.dag_id, args.run_id, force=args.force, reason=args.reason)
    emit(
        args.output,
        outcome,
        text=lambda: (
            f"Run {args.dag_id} / {args.run_id}: COMPENSATING ({outcome.reason}).\n"
            f"Cleared {', '.join(outcome.cleared)}: Airflow's scheduler runs them now; follow "
            f"with `wfe runs show {args.dag_id} {args.run_id}`."
        ),
    )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from airflow_wfe.app.schema import upgrade_schema

    done = upgrade_schema(get_settings(), args.revision)
    if done.before == done.after:
        print(f"State store {done.url} is already at revision {done.after}.")
    else:
        print(f"State store {done.url} upgraded: {done.before or '(empty)'} → {done.after}.")
    return EXIT_OK


def cmd_db_check(args: argparse.Namespace) -> int:
    from airflow_wfe.app.schema import schema_status

    status = schema_status(get_settings())
    state = "current" if status.current else f"needs `wfe db upgrade` (expected {status.expected})"
    emit(
        args.output,
        status,
        text=lambda: f"State store {status.url}: revision {status.revision or '(empty)'}, {state}.",
    )
    return EXIT_OK if status.current else EXIT_FINDING


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo drives Airflow's own CLI and DagBag: only `wfe demo` pays for importing it.
    from airflow_wfe.cli.demo import run_demo

    return run_demo(dags_folder=args.dags_folder, serve=args.serve, port=args.port)


def cmd_doctor(args: argparse.Namespace) -> int:
    # Reads Airflow's plugins and providers: only `wfe doctor` pays for importing them.
    from airflow_wfe.cli.doctor import run_doctor

    return run_doctor(output=args.output)


def add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``runs list``, ``runs show`` and ``compensate``."""
    runs_parser = add_command(
        commands,
        "runs",
        help="governed runs and their state histories",
        examples=[
            "wfe runs list --state FAILED",
            "wfe runs show etl manual__2026-11-25T10:00:00+00:00",
        ],
    )
    runs_commands = runs_parser.add_subparsers(
        dest="runs_command", metavar="COMMAND", required=True
    )
    listing = add_command(
        runs_commands,
        "list",
        help="list runs, newest first",
        examples=[
            "wfe runs list",
            "wfe runs list --dag-id etl --state FAILED --limit 10",
            "wfe runs list -o json | jq -r '.[].run_id'",
            "wfe runs list -o plain | awk '$3 == \"FAILED\"'",
        ],
    )
    listing.add_argument("--dag-id", "--dag", dest="dag_id", help="only this DAG")
    listing.add_argument("--state", type=str.upper, help="only runs in this state (e.g. FAILED)")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    listing.add_argument("--offset", type=_offset, default=0, help="skip this many first")
    add_output_option(listing)
    listing.set_defaults(handler=cmd_runs_list)
    show = add_command(
        runs_commands,
        "show",
        help="one run: every transition and every step",
        examples=[
            "wfe runs show etl manual__2026-11-25T10:00:00+00:00",
            "wfe runs show etl manual__2026-11-25T10:00:00+00:00 -o yaml",
            "wfe runs show etl manual__2026-11-25T10:00:00+00:00 --format svg --to run.svg",
        ],
        description="One run: every transition and every step, its compensations and gate "
        "decisions. Exit 1 when the run is not recorded.",
    )
    show.add_argument("dag_id")
    show.add_argument("run_id")
    add_output_option(show)
    show.add_argument(
        "--format",
        choices=("svg", "mermaid"),
        help="draw the run's timeline instead: a standalone SVG, or a Mermaid gantt chart",
    )
    show.add_argument("--to", metavar="FILE", help="write the picture to FILE (default: stdout)")
    show.set_defaults(handler=cmd_runs_show)

    compensate = add_command(
        commands,
        "compensate",
        help="undo a failed run's succeeded steps through its saga tasks",
        examples=[
            "wfe compensate etl manual__2026-11-25T10:00:00+00:00 --reason 'bad load'",
            "wfe compensate etl scheduled__2026-11-24T00:00:00+00:00 --force",
        ],
    )
    compensate.add_argument("dag_id")
    compensate.add_argument("run_id")
    compensate.add_argument(
        "--force", action="store_true", help="also compensate a run that COMPLETED"
    )
    compensate.add_argument("--reason", help="why, recorded with the request")
    add_output_option(compensate)
    compensate.set_defaults(handler=cmd_compensate)


def add_store_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``db upgrade|check``, ``demo`` and ``doctor``."""
    db = add_command(
        commands,
        "db",
        help="the state store's schema",
        examples=["wfe db upgrade", "wfe db check || wfe db upgrade"],
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    up = add_command(
        db_commands,
        "upgrade",
        help="migrate the state store to this version",
        examples=[
            "wfe db upgrade",
            "AIRFLOW__WFE__STORE_CONN=postgresql+psycopg://... wfe db upgrade",
        ],
    )
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(handler=cmd_db_upgrade)
    check = add_command(
        db_commands,
        "check",
        help="exit 1 when the store needs `wfe db upgrade`",
        examples=["wfe db check", "wfe db check -o json"],
    )
    add_output_option(check)
    check.set_defaults(handler=cmd_db_check)

    demo = add_command(
        commands,
        "demo",
        help="run the example DAGs through Airflow, print their histories, serve the UI",
        examples=["wfe demo", "wfe demo --no-serve", "wfe demo --port 8081"],
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

    doctor = add_command(
        commands,
        "doctor",
        help="check this deployment: store, signing key, policies, plugin, provider, StatsD",
        description="One line per check (ok, FAIL, skip); exit 1 when any check fails. "
        "Run it on every machine (scheduler, workers, API server) to find the one that differs.",
        examples=[
            "wfe doctor",
            "wfe doctor -o json | jq '.checks[] | select(.status == \"FAIL\")'",
        ],
    )
    add_output_option(doctor)
    doctor.set_defaults(handler=cmd_doctor)


def _command_of(argv: Sequence[str]) -> str | None:
    """The top-level command named in ``argv`` (the first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command tree (also used by the docs and the tests).

    With ``command`` (a name of :data:`airflow_wfe.cli.commands.COMMANDS`), only the module adding
    that command is imported and registered: running ``wfe runs list`` need not import the audit,
    artifact and policy commands. Without it, every command is (``wfe --help``, completion).
    """
    parser = argparse.ArgumentParser(
        prog="wfe",
        description="airflow-wfe: governed Airflow runs (state, compensation, gates, audit). "
        "Every command has its own --help with examples; `airflow wfe ...` runs the same commands.",
        epilog=examples_epilog(
            [
                "wfe runs list",
                "wfe runs show etl manual__2026-11-25T10:00:00+00:00 -o yaml",
                "wfe validate dags/*.yaml",
                "wfe audit verify",
                "wfe doctor",
            ],
            extra=EXIT_CODES,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"airflow-wfe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for adds in registrars(command):
        registrar(adds)(commands)
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The smallest parser that can parse ``argv`` (every command for help or completion)."""
    command = _command_of(argv)
    if command is None or "_ARGCOMPLETE" in os.environ or not registrars(command):
        return build_parser()
    return build_parser(command)


def _complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion through argcomplete, when installed and the shell asks (else nothing)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # completion is optional; the command works without it
        return
    argcomplete.autocomplete(parser)


def run_from_airflow(args: argparse.Namespace) -> None:
    """``airflow wfe ...``: hands everything after ``wfe`` to :func:`main` (see airflow_commands)."""
    arguments = list(args.wfe_args)
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if args.wfe_debug:
        arguments = ["--debug", *arguments]
    sys.exit(main(arguments or ["--help"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wfe`` console script."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = _parser_for(words)
    _complete(parser)
    args = parser.parse_args(words)
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
