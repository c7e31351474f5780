"""``wfe artifacts ...``: list, show, register, activate and roll back versioned artifacts.

Thin handlers over :class:`~airflow_wfe.store.artifacts.ArtifactRegistry`: each returns an exit
code, raises :class:`~airflow_wfe.exceptions.WfeError` for ``wfe: error: ...`` (exit 1), and read
commands take ``--json``. Writes are attributed to ``cli:<OS user>``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import mimetypes
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_wfe.store.artifacts import ArtifactHistory, ArtifactRegistry, ArtifactSummary

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


def _registry() -> ArtifactRegistry:
    from airflow_wfe.engine.harness import get_runtime_store
    from airflow_wfe.store.artifacts import ArtifactRegistry

    return ArtifactRegistry(get_runtime_store())


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "cli:unknown"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


# -- rendering -------------------------------------------------------------------------------


def render_artifact_list(artifacts: Sequence[ArtifactSummary]) -> str:
    """One line per artifact, by name."""
    if not artifacts:
        return "No artifacts registered yet."
    rows = [("NAME", "ACTIVE", "VERSIONS", "LAST ACTIVATED")]
    rows += [
        (a.name, a.active_version or "-", str(a.version_count), _time(a.last_activated_at))
        for a in artifacts
    ]
    return "\n".join(_table(rows))


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
            _time(v.created_at),
            v.created_by,
            f"{v.size:,} B",
            v.media_type,
        )
        for v in history.versions
    ]
    lines += _table(rows, "    ")
    lines += ["", f"  Activations ({len(history.activations)})"]
    if history.activations:
        events = [("AT", "VERSION", "BY", "REASON")]
        events += [(_time(a.at), a.version, a.actor, a.reason or "") for a in history.activations]
        lines += _table(events, "    ")
    else:
        lines.append("    none yet")
    return "\n".join(lines)


# -- handlers --------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from airflow_wfe.store.artifacts import to_jsonable

    artifacts = _registry().list()
    if args.json:
        _print_json(to_jsonable(artifacts))
    else:
        print(render_artifact_list(artifacts))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from airflow_wfe.store.artifacts import to_jsonable

    registry = _registry()
    if args.content:
        content = registry.active(args.name).content or b""
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return EXIT_OK
    history = registry.history(args.name)
    if args.json:
        _print_json(to_jsonable(history))
    else:
        print(render_artifact(history))
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from airflow_wfe.store.artifacts import ArtifactNotFoundError, version_for

    try:
        content = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"wfe: error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FINDING
    media_type = args.media_type or _guess_media_type(args.file)
    registry = _registry()
    try:
        existing = registry.get(args.name, version_for(content))
    except ArtifactNotFoundError:
        existing = None
    registered = registry.register(args.name, content, media_type=media_type, actor=_actor())
    if existing is None:
        print(
            f"Registered {registered.name} version {registered.version} "
            f"({registered.size:,} bytes, {registered.media_type})."
        )
    else:
        print(
            f"{registered.name} version {registered.version} is already registered "
            f"(by {existing.created_by} at {_time(existing.created_at)}); nothing stored."
        )
    if args.activate:
        _activate(registry, args.name, registered.version, reason=None)
    return EXIT_OK


def cmd_activate(args: argparse.Namespace) -> int:
    _activate(_registry(), args.name, args.version, reason=args.reason)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    registry = _registry()
    before = registry.active(args.name).version
    after = registry.rollback(args.name, actor=_actor(), reason=args.reason)
    print(f"Rolled back {args.name}: {before} → {after.version}.")
    return EXIT_OK


def _activate(registry: ArtifactRegistry, name: str, version: str, *, reason: str | None) -> None:
    from airflow_wfe.store.artifacts import ArtifactNotFoundError

    try:
        before: str | None = registry.active(name).version
    except ArtifactNotFoundError:
        before = None
    if before == version:
        print(f"{name} version {version} is already active.")
        return
    registry.activate(name, version, actor=_actor(), reason=reason)
    print(f"Activated {name} version {version} (was {before or 'none'}).")


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
