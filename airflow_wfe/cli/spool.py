"""``wfe spool status|flush``: what waits in this host's local spool, and writing it to the store.

Thin handlers over :mod:`airflow_wfe.app.spool`. ``flush`` exits 1 while facts remain (the store is
still unavailable), so a cron job or an operator's script can tell.
"""

from __future__ import annotations

import argparse
from typing import Any

from airflow_wfe.app.spool import flush_spool, spool_status
from airflow_wfe.cli.text import print_json

__all__ = ["add_spool_commands", "cmd_spool_flush", "cmd_spool_status"]


def cmd_spool_status(args: argparse.Namespace) -> int:
    status = spool_status()
    if args.json:
        print_json(status)
        return 0
    print(f"spool folder {status.folder} (bound {status.max_bytes} bytes per file)")
    if not status.files:
        print("  empty: every transition reached the store")
    for found in status.files:
        mark = "" if found.current_store else "  (another store)"
        print(f"  {found.path}: {found.pending} waiting, {found.size_bytes} bytes{mark}")
        print(f"    host {found.host}, store {found.store or '-'}")
        if found.pending:
            print(f"    oldest {found.oldest}, newest {found.newest}")
        for run, count in sorted(found.runs.items()):
            print(f"    {run}: {count}")
    return 0


def cmd_spool_flush(args: argparse.Namespace) -> int:
    result = flush_spool()
    if args.json:
        print_json(result)
    else:
        print(
            f"{result.path}: {result.replayed} replayed, {result.superseded} superseded, "
            f"{result.rejected} rejected, {result.remaining} still waiting"
        )
        if result.error:
            print(f"stopped: {result.error}")
    return 0 if result.complete else 1


def add_spool_commands(commands: Any) -> None:
    """Add ``spool status`` and ``spool flush`` to the ``wfe`` command tree."""
    parser = commands.add_parser(
        "spool", help="transitions waiting on this host for the store (docs/reliability.md)"
    )
    sub = parser.add_subparsers(dest="spool_command", metavar="COMMAND", required=True)
    status = sub.add_parser("status", help="what waits in the spool, per file and run")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=cmd_spool_status)
    flush = sub.add_parser(
        "flush", help="write what waits to the store, in order; exit 1 while some remains"
    )
    flush.add_argument("--json", action="store_true", help="print one JSON object")
    flush.set_defaults(handler=cmd_spool_flush)
