"""``wfe dora`` and ``wfe report``: DORA figures and what to improve, from the store's run history.

Thin handlers over :mod:`airflow_wfe.core.metrics.dora` and :mod:`airflow_wfe.app.report`. Both take
``--dag`` (repeatable), ``--window`` (``30d``, ``12h``, ``2w``) and ``--json``; a bad window is a
usage error (exit 2).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["add_metrics_commands", "cmd_dora", "cmd_report", "deployment_dag_ids"]

EXIT_OK = 0


def _window(text: str) -> timedelta:
    from airflow_wfe.config import parse_window

    try:
        return parse_window(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _store() -> Any:
    from airflow_wfe.engine.harness import get_runtime_store

    return get_runtime_store()


def _tagged_in_airflow(tag: str) -> set[str]:
    """DAG ids carrying ``tag`` in Airflow's metadata DB (empty when it cannot be read here)."""
    try:
        from airflow.models.dag import DagTag
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return {
                row[0] for row in session.execute(select(DagTag.dag_id).where(DagTag.name == tag))
            }
    except Exception as exc:  # noqa: BLE001 - the tag is one of two sources; say so and go on
        print(
            f"wfe: note: cannot read DAG tags from Airflow ({type(exc).__name__})", file=sys.stderr
        )
        return set()


def deployment_dag_ids(store: Any, explicit: list[str] | None) -> list[str]:
    """The DAGs whose runs are deployments: ``--dag`` if given, else those tagged ``deployment`` in
    Airflow plus the recorded DAGs matching ``[wfe] deployment_dags``."""
    if explicit:
        return sorted(set(explicit))
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.metrics.dora import DEPLOYMENT_TAG
    from airflow_wfe.store.history import known_dag_ids

    patterns = get_settings().deployment_dags
    recorded = known_dag_ids(store)
    matched = {d for d in recorded if any(fnmatch.fnmatchcase(d, p) for p in patterns)}
    tagged = _tagged_in_airflow(DEPLOYMENT_TAG) & set(recorded)
    return sorted(matched | tagged)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def cmd_dora(args: argparse.Namespace) -> int:
    from airflow_wfe.core.metrics.dora import dora_for

    store = _store()
    now = datetime.now(UTC)
    figures = [
        dora_for(store, dag_id, window=args.window, now=now)
        for dag_id in deployment_dag_ids(store, args.dag)
    ]
    if args.json:
        print(json.dumps([f.to_json() for f in figures], indent=2))
        return EXIT_OK
    if not figures:
        print(
            "No deployment DAGs: tag a DAG `deployment`, set [wfe] deployment_dags, or pass --dag."
        )
        return EXIT_OK
    days = args.window.total_seconds() / 86400
    print(f"DORA metrics over the last {days:g} day(s)")
    for f in figures:
        cfr = "n/a" if f.change_failure_rate is None else f"{f.change_failure_rate:.1%}"
        print(f"  {f.dag_id}: {f.deployments} deployment(s), {f.successes} ok, {f.failures} failed")
        print(f"    deployment frequency   {f.deployment_frequency_per_day:.3f} / day")
        print(f"    lead time for changes  {_duration(f.lead_time_seconds)}")
        print(f"    time to restore (mean) {_duration(f.mttr_seconds)}")
        print(f"    change failure rate    {cfr}")
        if f.open_failure_since is not None:
            print(
                f"    failing since          {f.open_failure_since:%Y-%m-%d %H:%M} UTC (not restored)"
            )
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from airflow_wfe.app.report import build_report, render_report
    from airflow_wfe.store.history import business_metrics, run_histories, step_histories

    store = _store()
    now = datetime.now(UTC)
    since = now - args.window
    dag_ids = sorted(set(args.dag)) if args.dag else None
    from airflow_wfe.store.decisions import gate_decisions, ledger_as_metrics

    report = build_report(
        run_histories(store, dag_ids, since),
        step_histories(store, dag_ids, since),
        [
            *business_metrics(store, dag_ids=dag_ids, since=since),
            *ledger_as_metrics(store, dag_ids=dag_ids, since=since),
        ],
        window_end=now,
        window=args.window,
        dag_ids=dag_ids or (),
        gate_decisions=gate_decisions(store, dag_ids=dag_ids, since=since),
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_report(report))
    return EXIT_OK


def add_metrics_commands(commands: Any) -> None:
    """Add ``dora`` and ``report`` to the ``wfe`` command tree."""
    dora = commands.add_parser(
        "dora", help="DORA metrics (lead time, frequency, MTTR, change failure rate)"
    )
    dora.add_argument(
        "--dag", action="append", metavar="DAG_ID", help="a deployment DAG (repeatable)"
    )
    dora.add_argument(
        "--window", type=_window, default=timedelta(days=30), help="e.g. 30d, 12h, 2w (default 30d)"
    )
    dora.add_argument("--json", action="store_true", help="print a JSON array, one object per DAG")
    dora.set_defaults(handler=cmd_dora)

    report = commands.add_parser(
        "report", help="what to improve: slow and retried steps, failures, gates, cost"
    )
    report.add_argument(
        "--dag", action="append", metavar="DAG_ID", help="only this DAG (repeatable)"
    )
    report.add_argument(
        "--window", type=_window, default=timedelta(days=7), help="e.g. 7d, 24h (default 7d)"
    )
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.set_defaults(handler=cmd_report)
