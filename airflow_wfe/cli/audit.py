"""``wfe audit ...``: verify the chain, export it, tell one run's story, checkpoint and archive.

Thin handlers over :mod:`airflow_wfe.app.audit`. ``verify`` exits 1 when anything is wrong and
names the first bad event; ``export`` streams (JSONL or CSV) to stdout or a file; ``show`` is for a
person reading one run's history.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from airflow_wfe.app import audit
from airflow_wfe.app.context import AppContext, cli_actor
from airflow_wfe.cli.audit_progress import progress
from airflow_wfe.cli.audit_text import render_story, render_verification
from airflow_wfe.cli.text import print_json
from airflow_wfe.core.audit.signing import generate_ed25519
from airflow_wfe.core.spec.models import parse_duration

__all__ = ["add_audit_commands", "parse_since"]

EXIT_OK = 0
EXIT_FINDING = 1


def parse_since(value: str) -> datetime:
    """``--since``: a date/time or a duration back from now (a usage error otherwise)."""
    try:
        return audit.parse_since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _note(message: str) -> None:
    print(f"wfe: note: {message}", file=sys.stderr)


def cmd_verify(args: argparse.Namespace) -> int:
    with progress("verifying the audit trail", enabled=not args.json):
        verdict = audit.verify(
            AppContext.from_process(),
            since=args.since,
            archives=args.archive or (),
            public_keys=args.public_key or (),
            signatures=args.signatures,
            anchors=args.anchors,
        )
    if args.json:
        print_json(verdict)
        return EXIT_OK if verdict.ok else EXIT_FINDING
    print(render_verification(verdict))
    first = verdict.first_finding()
    if first is not None:
        print(f"wfe: audit trail does not verify: first problem at {first}", file=sys.stderr)
    return EXIT_OK if verdict.ok else EXIT_FINDING


def cmd_anchor(args: argparse.Namespace) -> int:
    result = audit.anchor(AppContext.from_process(), args.to)
    if args.json:
        print_json(result)
    else:
        print(f"anchored the chain at event #{result.seq} in {result.path}")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    private, public, key_id = generate_ed25519(args.out, args.name)
    print(f"key id:      {key_id}")
    print(f"private key: {private} (mode 0600: only on the machines that write the trail)")
    print(f"public key:  {public} (for auditors and every machine that verifies)")
    print("configure, on every machine that writes (scheduler, workers, API server):")
    print(f"  [wfe] audit_signing_key = ed25519:{private}")
    print("and where only verification runs:")
    print(f"  [wfe] audit_verify_keys = {public}")
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    count = audit.sync_from_airflow(AppContext.from_process())
    print(f"imported {count} event(s) from Airflow's audit log")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    ctx = AppContext.from_process()
    if args.sync:
        audit.sync_from_airflow(ctx, on_error=_note)
    exported = audit.export(
        ctx, fmt=args.format, dag_id=args.dag_id, run_id=args.run_id, since=args.since
    )
    out: IO[str] = sys.stdout if args.output is None else args.output.open("w", encoding="utf-8")
    count = 0
    # Not while the events themselves scroll past on the same terminal.
    shown = args.output is not None or not sys.stdout.isatty()
    try:
        with progress("exporting audit events", enabled=shown) as advance:
            if exported.header is not None:
                out.write(exported.header)
            for line in exported.lines:
                out.write(line)
                count += 1
                if not count % 1000:
                    advance(1000)
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output is not None:
        print(f"wrote {count} event(s) to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    ctx = AppContext.from_process()
    if args.sync:
        audit.sync_from_airflow(ctx, on_error=_note)
    story = audit.run_story(ctx, args.dag_id, args.run_id)
    if args.json:
        print_json(story)
    else:
        print(render_story(story))
    return EXIT_OK if story.hashes_match else EXIT_FINDING


def cmd_checkpoint(args: argparse.Namespace) -> int:
    mark = audit.checkpoint(AppContext.from_process())
    if mark is None:
        print("the audit trail is empty: nothing to checkpoint")
    elif args.json:
        print_json(mark)
    else:
        print(f"signed checkpoint at event #{mark.seq} ({mark.key_id})")
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    with progress("archiving audit events", enabled=not args.json):
        result = audit.archive(
            AppContext.from_process(), older_than=args.older_than, folder=args.to, actor=cli_actor()
        )
    if result is None:
        print("no audit events old enough to archive")
        return EXIT_OK
    if args.json:
        print_json(result)
    else:
        print(
            f"archived events #{result.first_seq}..#{result.last_seq} ({result.events}) to "
            f"{result.path} (sha256 {result.sha256[:16]}...)"
        )
    return EXIT_OK


def _duration(value: str) -> timedelta:
    try:
        delta = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(delta, timedelta):
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (e.g. 90d)")
    return delta


_NO_SYNC = "do not first import changes made in Airflow's UI/REST (see `wfe audit sync`)"


def add_audit_commands(commands: Any) -> None:
    """Attach ``audit`` and its subcommands to the ``wfe`` parser."""
    parser = commands.add_parser("audit", help="the tamper-evident audit trail")
    sub = parser.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    verify = sub.add_parser("verify", help="check hashes, links, signatures; exit 1 if broken")
    verify.add_argument("--since", type=parse_since, help="only events from this time on")
    verify.add_argument(
        "--archive", type=Path, action="append", metavar="FILE", help="also check an archive file"
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        action="append",
        metavar="PEM",
        help="Ed25519 public key to check signatures with (repeat for older keys)",
    )
    verify.add_argument(
        "--no-signatures",
        dest="signatures",
        action="store_false",
        help="check hashes and links only (the output says so): no key needed, but a chain "
        "rewritten by someone with write access to the store passes",
    )
    verify.add_argument(
        "--anchors",
        type=Path,
        metavar="DIR",
        help="also compare the store with the signed anchors in DIR (truncation, rollback, erasure)",
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)

    export = sub.add_parser("export", help="write events as JSON lines or CSV")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--dag", "--dag-id", dest="dag_id")
    export.add_argument("--run", "--run-id", dest="run_id")
    export.add_argument("--since", type=parse_since)
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.add_argument("--no-sync", dest="sync", action="store_false", help=_NO_SYNC)
    export.set_defaults(handler=cmd_export)

    show = sub.add_parser("show", help="the story of one run, for a person")
    show.add_argument("dag_id")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--no-sync", dest="sync", action="store_false", help=_NO_SYNC)
    show.set_defaults(handler=cmd_show)

    sync = sub.add_parser(
        "sync", help="import changes made in Airflow's UI/REST (user, request) into the trail"
    )
    sync.set_defaults(handler=cmd_sync)

    anchor = sub.add_parser(
        "anchor", help="write a signed anchor of the chain's head outside the store (schedule it)"
    )
    anchor.add_argument(
        "--to", type=Path, metavar="DIR", help="anchor folder (default [wfe] audit_anchor_dir)"
    )
    anchor.add_argument("--json", action="store_true")
    anchor.set_defaults(handler=cmd_anchor)

    keygen = sub.add_parser(
        "keygen", help="write a new Ed25519 key pair for signing the trail; print its id"
    )
    keygen.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the keys"
    )
    keygen.add_argument("--name", default="wfe-audit", help="file name stem (default wfe-audit)")
    keygen.set_defaults(handler=cmd_keygen)

    checkpoint = sub.add_parser("checkpoint", help="sign a checkpoint at the chain's head now")
    checkpoint.add_argument("--json", action="store_true")
    checkpoint.set_defaults(handler=cmd_checkpoint)

    archive = sub.add_parser("archive", help="move old events to a signed archive file")
    archive.add_argument("--older-than", type=_duration, required=True, help="age, e.g. 90d")
    archive.add_argument("--to", type=Path, required=True, help="folder for the archive file")
    archive.add_argument("--json", action="store_true")
    archive.set_defaults(handler=cmd_archive)
