"""``wfe dora`` and ``wfe report``: DORA figures and what to improve, from the store's run history.

Thin handlers over :mod:`airflow_wfe.app.dora` and :mod:`airflow_wfe.app.report`. Both take
``--dag`` (repeatable), ``--window`` (``30d``, ``12h``, ``2w``) and ``-o``/``--json``; a bad window is a
usage error (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.dora import dora
from airflow_wfe.app.report import report_for
from airflow_wfe.cli.output import add_command, add_output_option, emit
from airflow_wfe.cli.text import render_dora, render_report
from airflow_wfe.durations import parse_window

__all__ = ["add_metrics_commands", "cmd_dora", "cmd_report"]

EXIT_OK = 0


def _window(text: str) -> timedelta:
    try:
        return parse_window(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _note(message: str) -> None:
    print(f"wfe: note: {message}", file=sys.stderr)


def cmd_dora(args: argparse.Namespace) -> int:
    figures = dora(AppContext.from_process(), dag_ids=args.dag, window=args.window, on_note=_note)
    emit(args.output, figures, text=lambda: render_dora(figures, args.window))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    report = report_for(AppContext.from_process(), dag_ids=args.dag, window=args.window)
    emit(args.output, report, text=lambda: render_report(report))
    return EXIT_OK


def add_metrics_commands(commands: Any) -> None:
    """Add ``dora`` and ``report`` to the ``wfe`` command tree."""
    dora_parser = add_command(
        commands,
        "dora",
        help="DORA metrics (lead time, frequency, MTTR, change failure rate)",
        examples=["wfe dora", "wfe dora --dag deploy_api --window 90d", "wfe dora -o yaml"],
    )
    dora_parser.add_argument(
        "--dag", action="append", metavar="DAG_ID", help="a deployment DAG (repeatable)"
    )
    dora_parser.add_argument(
        "--window", type=_window, default=timedelta(days=30), help="e.g. 30d, 12h, 2w (default 30d)"
    )
    add_output_option(dora_parser)
    dora_parser.set_defaults(handler=cmd_dora)

    report = add_command(
        commands,
        "report",
        help="what to improve: slow and retried steps, failures, gates, cost",
        examples=["wfe report", "wfe report --dag etl --window 30d", "wfe report -o json"],
    )
    report.add_argument(
        "--dag", action="append", metavar="DAG_ID", help="only this DAG (repeatable)"
    )
    report.add_argument(
        "--window", type=_window, default=timedelta(days=7), help="e.g. 7d, 24h (default 7d)"
    )
    add_output_option(report)
    report.set_defaults(handler=cmd_report)
