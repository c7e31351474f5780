"""``wfe audit ...``: verify the chain, export it, tell one run's story, checkpoint and archive.

Thin handlers over :mod:`airflow_wfe.store.audit_reader`. ``verify`` exits 1 when anything is wrong and
names the first bad event; ``export`` streams (JSONL or CSV) to stdout or a file; ``show`` is for a
person reading one run's history.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_wfe.core.audit.events import SealedEvent
    from airflow_wfe.core.audit.signing import Signer
    from airflow_wfe.store.sql_store import SqlStore

__all__ = ["add_audit_commands", "describe", "parse_since"]

EXIT_OK = 0
EXIT_FINDING = 1
CSV_COLUMNS = (
    "seq",
    "at",
    "type",
    "actor",
    "dag_id",
    "run_id",
    "step_id",
    "map_index",
    "payload",
    "versions",
    "prev_hash",
    "hash",
)


def _store() -> SqlStore:
    from airflow_wfe.engine.harness import get_runtime_store

    return get_runtime_store()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "cli:unknown"


def parse_since(value: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T12:00:00Z``, or a duration back from now (``7d``, ``12h``)."""
    from airflow_wfe.core.spec.models import parse_duration

    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            delta = parse_duration(text)
        except ValueError:
            delta = None
        if delta is None or isinstance(delta, str):
            raise argparse.ArgumentTypeError(
                f"{value!r} is neither a date/time (2026-11-01, 2026-11-01T12:00:00Z) nor a "
                "duration back from now (7d, 12h, 30m)"
            ) from None
        moment: datetime = datetime.now(UTC) - delta
        return moment
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _verify_signer(public_key: Path | None) -> Signer | None:
    """The key that checks signatures: a given public key, else the configured key (never a new
    generated one: verifying with a fresh key would only say "unknown key")."""
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.audit.signing import load_public_key, load_signer

    if public_key is not None:
        return load_public_key(public_key)
    settings = get_settings()
    default = settings.airflow_home / "wfe_audit.key"
    if not settings.audit_signing_key and not default.exists():
        return None
    return load_signer(settings.audit_signing_key, default)


def _write_signer() -> Signer:
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.audit.signing import load_signer

    settings = get_settings()
    return load_signer(settings.audit_signing_key, settings.airflow_home / "wfe_audit.key")


def cmd_verify(args: argparse.Namespace) -> int:
    from airflow_wfe.store.audit_reader import verify, verify_archive

    signer = _verify_signer(args.public_key)
    store = _store()
    reports = {str(path): verify_archive(path, signer, store) for path in args.archive or ()}
    reports["store"] = verify(store, signer, since=args.since)
    ok = all(report.ok for report in reports.values())
    if args.json:
        print(json.dumps({"ok": ok, **{k: r.to_dict() for k, r in reports.items()}}, indent=2))
        return EXIT_OK if ok else EXIT_FINDING
    for name, report in reports.items():
        span = f"events #{report.first_seq}..#{report.last_seq}" if report.events else "no events"
        status = "OK" if report.ok else "BROKEN"
        print(f"{name}: {status}: {report.events} {span}, {report.checkpoints} checkpoint(s)")
        for note in report.notes:
            print(f"  note: {note}")
        for finding in report.findings:
            print(f"  {finding}")
    if not ok:
        first = next(f for r in reports.values() for f in r.findings)
        print(f"wfe: audit trail does not verify: first problem at {first}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FINDING


def _export_rows(events: Iterator[SealedEvent]) -> Iterator[dict[str, Any]]:
    for event in events:
        body = event.content()
        yield {**body, "prev_hash": event.prev_hash, "hash": event.hash}


def _sync(store: SqlStore, quiet: bool = True) -> int:
    """Import the changes made in Airflow (UI, REST) that are not in the trail yet."""
    from airflow_wfe.adapters.listeners.airflow_log import sync_airflow_log

    try:
        return sync_airflow_log(store)
    except Exception as exc:  # reading the trail must not depend on Airflow's database
        if not quiet:
            raise
        print(
            f"wfe: note: changes made in Airflow not imported ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return 0


def cmd_sync(args: argparse.Namespace) -> int:
    count = _sync(_store(), quiet=False)
    print(f"imported {count} event(s) from Airflow's audit log")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from airflow_wfe.core.audit.canonical import canonical_json
    from airflow_wfe.store.audit_reader import events

    if args.sync:
        _sync(_store())
    stream = events(_store(), dag_id=args.dag_id, run_id=args.run_id, since=args.since)
    out: IO[str] = sys.stdout if args.output is None else args.output.open("w", encoding="utf-8")
    count = 0
    try:
        if args.format == "jsonl":
            for event in stream:
                # The stored body verbatim, so an external system can re-check every hash.
                out.write(
                    canonical_json({"body": event.body, "hash": event.hash, **event.content()})
                    + "\n"
                )
                count += 1
        else:
            writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in _export_rows(stream):
                row["payload"] = canonical_json(row.get("payload", {}))
                row["versions"] = canonical_json(row.get("versions", {}))
                writer.writerow(row)
                count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output is not None:
        print(f"wrote {count} event(s) to {args.output}", file=sys.stderr)
    return EXIT_OK


def describe(event: SealedEvent) -> str:
    """One line a person can read: what happened, in the words of the event's type."""
    body = event.content()
    payload: dict[str, Any] = body.get("payload", {})
    step = event.step_id
    if step is not None and body.get("map_index") not in (None, -1):
        step = f"{step}[{body['map_index']}]"
    reason = payload.get("reason")
    suffix = f": {reason}" if reason else ""
    if event.type == "run.transition":
        return f"run {payload.get('from_state') or '(new)'} -> {payload.get('to_state')}{suffix}"
    if event.type == "step.transition":
        tried = f" (try {payload['try_number']})" if payload.get("try_number") else ""
        return (
            f"step {step} {payload.get('from_state') or '(new)'} -> "
            f"{payload.get('to_state')}{tried}{suffix}"
        )
    if event.type == "transition.refused":
        return f"REFUSED {'step ' + str(step) if step else 'run'}: {payload.get('error')}"
    if event.type == "policy.decision":
        versions = ", ".join(f"{k.removeprefix('policy:')} {v}" for k, v in
                             sorted(body.get("versions", {}).items()))  # fmt: skip
        why = "; ".join(
            str(r.get("message"))
            for r in payload.get("reasons", [])
            if r.get("outcome") == payload.get("outcome")
        )
        return f"gate {step}: {str(payload.get('outcome')).upper()}: {why} (policies: {versions})"
    if event.type == "approval":
        reasons = payload.get("reasons") or [{}]
        comment = f' "{payload["comment"]}"' if payload.get("comment") else ""
        return f"approval at {step}: {payload.get('outcome')}: {reasons[0].get('message')}{comment}"
    if event.type == "cost.spent":
        detail = f" ({payload['detail']})" if payload.get("detail") else ""
        return f"cost of {step}: {payload.get('amount'):.2f} {payload.get('currency')}{detail}"
    if event.type == "policy.violation":
        return f"VIOLATION: {payload.get('detail')}"
    detail = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if v not in (None, ""))
    return f"{event.type}{' ' + str(step) if step else ''}: {detail}"


def cmd_show(args: argparse.Namespace) -> int:
    from airflow_wfe.core.audit.events import body_hash
    from airflow_wfe.exceptions import RunNotFoundError
    from airflow_wfe.store.audit_reader import events

    if args.sync:
        _sync(_store())
    found = list(events(_store(), dag_id=args.dag_id, run_id=args.run_id))
    if not found:
        raise RunNotFoundError(args.dag_id, args.run_id)
    intact = all(body_hash(e.body) == e.hash for e in found)
    if args.json:
        print(
            json.dumps(
                {
                    "dag_id": args.dag_id,
                    "run_id": args.run_id,
                    "events": [{**e.content(), "hash": e.hash} for e in found],
                    "hashes_match": intact,
                },
                indent=2,
            )
        )
        return EXIT_OK if intact else EXIT_FINDING
    versions: dict[str, Any] = {}
    for event in found:
        versions.update(event.content().get("versions", {}))
    print(f"Run {args.dag_id} / {args.run_id}")
    if versions:
        print("Versions: " + ", ".join(f"{k}={v}" for k, v in sorted(versions.items())))
    print(f"Audit events #{found[0].seq}..#{found[-1].seq} ({len(found)} for this run)")
    print()
    width = max(len(e.actor) for e in found)
    for event in found:
        print(f"#{event.seq:<6} {event.at[:23]}Z  {event.actor:<{width}}  {describe(event)}")
    print()
    if intact:
        print("Every event above matches its hash; `wfe audit verify` checks the whole chain.")
    else:
        print("WARNING: some events above do not match their hash; run `wfe audit verify`.")
    return EXIT_OK if intact else EXIT_FINDING


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from airflow_wfe.store.audit_writer import AuditLog

    store = _store()
    log = AuditLog(signer=_write_signer(), redactor=store.audit.redactor)
    mark = store.write("audit checkpoint", lambda c: log.checkpoint(c, "manual"))
    if mark is None:
        print("the audit trail is empty: nothing to checkpoint")
    elif args.json:
        print(json.dumps(mark.__dict__, indent=2))
    else:
        print(f"signed checkpoint at event #{mark.seq} ({mark.key_id})")
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    from airflow_wfe.store.audit_reader import archive

    cutoff = datetime.now(UTC) - args.older_than
    result = archive(_store(), _write_signer(), older_than=cutoff, folder=args.to, actor=_actor())
    if result is None:
        print("no audit events old enough to archive")
        return EXIT_OK
    if args.json:
        print(json.dumps({**result.__dict__, "path": str(result.path)}, indent=2))
    else:
        print(
            f"archived events #{result.first_seq}..#{result.last_seq} ({result.events}) to "
            f"{result.path} (sha256 {result.sha256[:16]}...)"
        )
    return EXIT_OK


def _duration(value: str) -> Any:
    from airflow_wfe.core.spec.models import parse_duration

    try:
        delta = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if isinstance(delta, str):
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (e.g. 90d)")
    return delta


_NO_SYNC = "do not first import changes made in Airflow's UI/REST (see `wfe audit sync`)"


def add_audit_commands(commands: Any) -> None:
    """Attach ``audit`` and its subcommands to the ``wfe`` parser."""
    audit = commands.add_parser("audit", help="the tamper-evident audit trail")
    sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    verify = sub.add_parser("verify", help="check hashes, links, signatures; exit 1 if broken")
    verify.add_argument("--since", type=parse_since, help="only events from this time on")
    verify.add_argument(
        "--archive", type=Path, action="append", metavar="FILE", help="also check an archive file"
    )
    verify.add_argument(
        "--public-key", type=Path, metavar="PEM", help="Ed25519 public key to check signatures"
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

    checkpoint = sub.add_parser("checkpoint", help="sign a checkpoint at the chain's head now")
    checkpoint.add_argument("--json", action="store_true")
    checkpoint.set_defaults(handler=cmd_checkpoint)

    archive = sub.add_parser("archive", help="move old events to a signed archive file")
    archive.add_argument("--older-than", type=_duration, required=True, help="age, e.g. 90d")
    archive.add_argument("--to", type=Path, required=True, help="folder for the archive file")
    archive.add_argument("--json", action="store_true")
    archive.set_defaults(handler=cmd_archive)
