"""``wfe spool status|flush``: what waits in this host's local spool, and writing it to the store.

Thin handlers over :mod:`airflow_wfe.app.spool`. ``flush`` exits 1 while facts remain (the store is
still unavailable), so a cron job or an operator's script can tell.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from airflow_wfe.app.spool import flush_spool, spool_status
from airflow_wfe.cli.output import add_command, add_output_option, emit

if TYPE_CHECKING:
    from airflow_wfe.app.spool import SpoolStatus

__all__ = ["add_spool_commands", "cmd_spool_flush", "cmd_spool_status"]


def _status_text(status: SpoolStatus) -> str:
    lines = [f"spool folder {status.folder} (bound {status.max_bytes} bytes per file)"]
    if not status.files:
        lines.append("  empty: every transition reached the store")
    for found in status.files:
        mark = "" if found.current_store else "  (another store)"
        lines.append(f"  {found.path}: {found.pending} waiting, {found.size_bytes} bytes{mark}")
        lines.append(f"    host {found.host}, store {found.store or '-'}")
        if found.pending:
            lines.append(f"    oldest {found.oldest}, newest {found.newest}")
        lines += [f"    {run}: {count}" for run, count in sorted(found.runs.items())]
    return "\n".join(lines)


def cmd_spool_status(args: argparse.Namespace) -> int:
    status = spool_status()
    emit(args.output, status, text=lambda: _status_text(status))
    return 0


def cmd_spool_flush(args: argparse.Namespace) -> int:
    result = flush_spool()
    summary = (
        f"{result.path}: {result.replayed} replayed, {result.superseded} superseded, "
        f"{result.rejected} rejected, {result.remaining} still waiting"
    )
    emit(
        args.output,
        result,
        text=lambda: summary + (f"\nstopped: {result.error}" if result.error else ""),
    )
    return 0 if result.complete else 1


def add_spool_commands(commands: Any) -> None:
    """Add ``spool status`` and ``spool flush`` to the ``wfe`` command tree."""
    parser = add_command(
        commands,
        "spool",
        help="transitions waiting on this host for the store (docs/reliability.md)",
        examples=["wfe spool status", "wfe spool flush || echo 'store still away'"],
    )
    sub = parser.add_subparsers(dest="spool_command", metavar="COMMAND", required=True)
    status = add_command(
        sub,
        "status",
        help="what waits in the spool, per file and run",
        examples=["wfe spool status", "wfe spool status -o json"],
    )
    add_output_option(status)
    status.set_defaults(handler=cmd_spool_status)
    flush = add_command(
        sub,
        "flush",
        help="write what waits to the store, in order; exit 1 while some remains",
        examples=["wfe spool flush", "wfe spool flush -o json"],
    )
    add_output_option(flush)
    flush.set_defaults(handler=cmd_spool_flush)
