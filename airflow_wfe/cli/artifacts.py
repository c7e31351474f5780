"""``wfe artifacts ...``: list, show, register, activate and roll back versioned artifacts.

Thin handlers over :mod:`airflow_wfe.app.artifacts`: each returns an exit code, lets a
:class:`~airflow_wfe.exceptions.WfeError` become ``wfe: error: ...`` (exit 1), and read commands
take ``--json``. Writes are attributed to ``cli:<OS user>``.
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
from pathlib import Path

from airflow_wfe.app import artifacts
from airflow_wfe.app.context import AppContext, cli_actor
from airflow_wfe.app.models import ArtifactChange, ArtifactHistory, ArtifactList
from airflow_wfe.cli.text import print_json, table, timestamp

__all__ = [
    "add_artifact_commands",
    "cmd_activate",
    "cmd_list",
    "cmd_register",
    "cmd_rollback",
    "cmd_show",
    "render_artifact",
    "render_artifact_list",
]

EXIT_OK = 0
EXIT_FINDING = 1
_DEFAULT_MEDIA_TYPE = "text/plain"


# -- rendering -------------------------------------------------------------------------------


def render_artifact_list(artifacts: ArtifactList) -> str:
    """One line per artifact, by name."""
    if not artifacts.root:
        return "No artifacts registered yet."
    rows = [("NAME", "ACTIVE", "VERSIONS", "LAST ACTIVATED")]
    rows += [
        (a.name, a.active_version or "-", str(a.version_count), timestamp(a.last_activated_at))
        for a in artifacts.root
    ]
    return "\n".join(table(rows))


def render_artifact(history: ArtifactHistory) -> str:
    """Versions (the active one starred) and the activation history of one artifact."""
    active = history.active_version or "none (activate one with `wfe artifacts activate`)"
    lines = [f"Artifact {history.name}: active version {active}", ""]
    lines.append(f"  Versions ({len(history.versions)}), oldest first")
    rows = [("", "VERSION", "CREATED", "BY", "SIZE", "MEDIA TYPE")]
    rows += [
        (
            "*" if v.version == history.active_version else "",
            v.version,
            timestamp(v.created_at),
            v.created_by,
            f"{v.size:,} B",
            v.media_type,
        )
        for v in history.versions
    ]
    lines += table(rows, "    ")
    lines += ["", f"  Activations ({len(history.activations)})"]
    if history.activations:
        events = [("AT", "VERSION", "BY", "REASON")]
        events += [
            (timestamp(a.at), a.version, a.actor, a.reason or "") for a in history.activations
        ]
        lines += table(events, "    ")
    else:
        lines.append("    none yet")
    lines += ["", f"  Runs that used it ({len(history.runs)})"]
    if history.runs:
        used = [("VERSION", "DAG", "RUN", "FIRST USED")]
        used += [(r.version, r.dag_id, r.run_id, timestamp(r.used_at)) for r in history.runs]
        lines += table(used, "    ")
    else:
        lines.append("    none yet")
    return "\n".join(lines)


def _print_change(change: ArtifactChange) -> None:
    if change.changed:
        print(
            f"Activated {change.name} version {change.version} (was {change.previous or 'none'})."
        )
    else:
        print(f"{change.name} version {change.version} is already active.")


# -- handlers --------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    found = artifacts.list_artifacts(AppContext.from_process())
    if args.json:
        print_json(found)
    else:
        print(render_artifact_list(found))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    ctx = AppContext.from_process()
    if args.content:
        content = artifacts.active_content(ctx, args.name)
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return EXIT_OK
    history = artifacts.artifact_history(ctx, args.name)
    if args.json:
        print_json(history)
    else:
        print(render_artifact(history))
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    try:
        content = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"wfe: error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FINDING
    media_type = args.media_type or _guess_media_type(args.file)
    done = artifacts.register(
        AppContext.from_process(),
        args.name,
        content,
        media_type=media_type,
        actor=cli_actor(),
        activate_it=args.activate,
    )
    registered, existing = done.registered, done.existing
    if existing is None:
        print(
            f"Registered {registered.name} version {registered.version} "
            f"({registered.size:,} bytes, {registered.media_type})."
        )
    else:
        print(
            f"{registered.name} version {registered.version} is already registered "
            f"(by {existing.created_by} at {timestamp(existing.created_at)}); nothing stored."
        )
    if done.activation is not None:
        _print_change(done.activation)
    return EXIT_OK


def cmd_activate(args: argparse.Namespace) -> int:
    change = artifacts.activate(
        AppContext.from_process(), args.name, args.version, actor=cli_actor(), reason=args.reason
    )
    _print_change(change)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    change = artifacts.rollback(
        AppContext.from_process(), args.name, actor=cli_actor(), reason=args.reason
    )
    print(f"Rolled back {args.name}: {change.previous} → {change.version}.")
    return EXIT_OK


def _guess_media_type(file: str) -> str:
    if file == "-":
        return _DEFAULT_MEDIA_TYPE
    guessed, _encoding = mimetypes.guess_type(file)
    return guessed or _DEFAULT_MEDIA_TYPE


# -- wiring ----------------------------------------------------------------------------------


def add_artifact_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``artifacts`` and its subcommands to the ``wfe`` command tree."""
    artifacts = commands.add_parser(
        "artifacts", help="versioned artifacts: register, activate, roll back, inspect"
    )
    sub = artifacts.add_subparsers(dest="artifacts_command", metavar="COMMAND", required=True)

    listing = sub.add_parser("list", help="every artifact with its active version")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", help="one artifact: its versions and activations")
    show.add_argument("name")
    output = show.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument(
        "--content", action="store_true", help="print the active version's content, byte for byte"
    )
    show.set_defaults(handler=cmd_show)

    register = sub.add_parser(
        "register", help="store a file as a version (the same content gives the same version)"
    )
    register.add_argument("name", help="artifact name, e.g. prompts/summary")
    register.add_argument("file", help="file to read, or - for standard input")
    register.add_argument(
        "--media-type",
        help=f"media type of the content (default: guessed from the file name, else {_DEFAULT_MEDIA_TYPE})",
    )
    register.add_argument("--activate", action="store_true", help="also make it the active version")
    register.set_defaults(handler=cmd_register)

    activate = sub.add_parser("activate", help="make a version the active one")
    activate.add_argument("name")
    activate.add_argument("version")
    activate.add_argument("--reason", help="why, kept in the activation history")
    activate.set_defaults(handler=cmd_activate)

    rollback = sub.add_parser(
        "rollback", help="re-activate the version that was active before the current one"
    )
    rollback.add_argument("name")
    rollback.add_argument("--reason", help="why, kept in the activation history")
    rollback.set_defaults(handler=cmd_rollback)
