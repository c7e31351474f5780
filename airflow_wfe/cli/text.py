"""What the ``wfe`` read commands print: JSON through the models, text through these renderers.

Every function here takes a response model of :mod:`airflow_wfe.app.models` (never a store record),
so the text and the ``--json`` output of a command come from the same value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from airflow_wfe.app.models import (
    CostList,
    DecisionItem,
    DoraList,
    JsonModel,
    PolicyDecision,
    Report,
    RunDetail,
    RunList,
    StepDetail,
    Transition,
)
from airflow_wfe.app.report import COST_METRIC

__all__ = [
    "print_json",
    "render_cost",
    "render_decisions",
    "render_dora",
    "render_policy_decision",
    "render_report",
    "render_run",
    "render_run_list",
    "table",
    "timestamp",
]


def print_json(model: JsonModel) -> None:
    """The one way a command prints JSON: the model's own serialization, indented."""
    print(json.dumps(model.model_dump(mode="json"), indent=2))


def timestamp(value: datetime | None) -> str:
    """``2026-11-25 10:00:00.123Z`` (``-`` for none)."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows as left-aligned columns (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _label(step_id: str, map_index: int) -> str:
    return step_id if map_index < 0 else f"{step_id}[{map_index}]"


def _transition_line(transition: Transition, indent: str) -> str:
    source = transition.from_state or "(new)"
    move = f"{source} → {transition.to_state}"
    attempt = f" try {transition.try_number}" if transition.try_number else ""
    reason = f"  {transition.reason}" if transition.reason else ""
    return f"{indent}{timestamp(transition.at)}  {move:<28} {transition.actor:<10}{attempt}{reason}"


def _step_lines(step: StepDetail) -> list[str]:
    retries = max(0, step.try_number - 1)
    retried = f", {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    tries = f"try {step.try_number}{retried}" if step.try_number else "never ran"
    lines = [f"    {_label(step.step_id, step.map_index)}: {step.state} ({tries})"]
    return lines + [_transition_line(t, "      ") for t in step.transitions]


def render_run(run: RunDetail) -> str:
    """The whole story of one run: its transitions, then each step with its own, then what was
    compensated (decisions are :func:`render_decisions`)."""
    lines = [
        f"Run {run.dag_id} / {run.run_id}: {run.state}",
        f"  run type: {run.run_type or '-'}   DAG version: {run.dag_version_id or '-'}",
        f"  created {timestamp(run.created_at)}   last change {timestamp(run.updated_at)}",
    ]
    if run.spec_version or run.spec_hash:
        lines.append(
            f"  workflow spec: version {run.spec_version or '-'}, "
            f"content hash {(run.spec_hash or '-')[:12]}"
        )
    if run.spooled:
        lines.append(
            f"  {run.spooled} transition(s) still spooled on this host, not in the store yet "
            "(wfe spool flush)"
        )
    lines += ["", "  Run transitions"]
    lines += [_transition_line(t, "    ") for t in run.transitions]
    lines += ["", f"  Steps ({len(run.steps)})"]
    for step in run.steps:
        lines += _step_lines(step)
    if run.compensations:
        lines += ["", "  Compensations (in the order they ran)"]
        lines += [
            f"    {c.order}. {_label(c.step_id, c.map_index)}: {c.outcome}  ({c.reason})"
            for c in run.compensations
        ]
    if run.artifacts:
        lines += ["", "  Artifacts (versions pinned at the run's start)"]
        lines += [
            f"    {a.name} @ {a.version}  first used {timestamp(a.used_at)}" for a in run.artifacts
        ]
    return "\n".join(lines)


def render_decisions(found: Sequence[DecisionItem]) -> list[str]:
    """The "Decisions" section of ``runs show``: every gate decision with its policy versions and
    reasons, every approval with who answered and their comment."""
    if not found:
        return []
    lines = ["", "  Decisions"]
    for d in found:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(d.policies.items())) or "-"
        head = f"    {timestamp(d.at)}  {d.step_id}: {d.kind} {d.outcome.upper()}  by {d.actor}"
        with_versions = d.kind == "policy" or (d.kind == "preflight" and bool(d.policies))
        lines.append(head + (f"  (policies: {versions})" if with_versions else ""))
        for reason in d.reasons:
            where = f"  [{reason['policy']}/{reason['rule']}]" if "rule" in reason else ""
            outcome = f"{reason['outcome']}: " if "outcome" in reason else ""
            lines.append(f"      {outcome}{reason.get('message', '')}{where}")
        if d.comment:
            lines.append(f"      comment: {d.comment}")
    return lines


def render_run_list(runs: RunList) -> str:
    """One line per run, newest first, aligned like ``airflow dags list``."""
    if not runs.root:
        return "No governed runs recorded yet."
    rows = [("DAG_ID", "RUN_ID", "STATE", "RUN_TYPE", "UPDATED")]
    rows += [
        (r.dag_id, r.run_id, r.state, r.run_type or "-", timestamp(r.updated_at)) for r in runs.root
    ]
    return "\n".join(table(rows))


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


def render_dora(figures: DoraList, window: timedelta) -> str:
    """``wfe dora`` for a person: the four figures per deployment DAG."""
    if not figures.root:
        return (
            "No deployment DAGs: tag a DAG `deployment`, set [wfe] deployment_dags, or pass --dag."
        )
    lines = [f"DORA metrics over the last {window.total_seconds() / 86400:g} day(s)"]
    for f in figures.root:
        cfr = "n/a" if f.change_failure_rate is None else f"{f.change_failure_rate:.1%}"
        lines += [
            f"  {f.dag_id}: {f.deployments} deployment(s), {f.successes} ok, {f.failures} failed",
            f"    deployment frequency   {f.deployment_frequency_per_day:.3f} / day",
            f"    lead time for changes  {_duration(f.lead_time_seconds)}",
            f"    time to restore (mean) {_duration(f.mttr_seconds)}",
            f"    change failure rate    {cfr}",
        ]
        if f.open_failure_since is not None:
            lines.append(
                f"    failing since          {f.open_failure_since:%Y-%m-%d %H:%M} UTC (not restored)"
            )
    return "\n".join(lines)


def render_report(report: Report) -> str:
    """``wfe report`` for a terminal."""
    lines = [
        f"Report {report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC"
        + (f" for {', '.join(report.dag_ids)}" if report.dag_ids else " (all DAGs)"),
        f"  Runs: {report.runs}"
        + (
            " (" + ", ".join(f"{s} {n}" for s, n in report.runs_by_state.items()) + ")"
            if report.runs_by_state
            else ""
        ),
        "  Failure rate: "
        + ("n/a" if report.failure_rate is None else f"{report.failure_rate:.1%}")
        + "   compensated failures: "
        + ("n/a" if report.compensation_rate is None else f"{report.compensation_rate:.1%}"),
        "  Slowest steps (p50 / p95 of a try):",
    ]
    lines += [
        f"    {r.dag_id}.{r.step_id}: {r.p50_seconds}s / {r.p95_seconds}s over {r.tries} tries"
        for r in report.slowest_steps
    ] or ["    no step durations recorded"]
    lines.append("  Most retried steps:")
    for retried in report.most_retried_steps:
        lines.append(f"    {retried.dag_id}.{retried.step_id}: {retried.retries} retries")
        lines += [f"      {e.count}× {e.error}" for e in retried.errors]
    if not report.most_retried_steps:
        lines.append("    no retries recorded")
    lines.append("  Gates that deny most:")
    lines += [f"    {g.policy}: {g.deny} of {g.decisions} denied" for g in report.gates] or [
        "    no gate decisions recorded"
    ]
    lines.append(f"  Cost per run (business metric {COST_METRIC!r}), by day:")
    lines += [
        f"    {c.day}: {c.mean_cost_per_run} over {c.runs} runs" for c in report.cost_per_run
    ] or ["    no costs recorded"]
    if report.costliest_steps:
        lines.append("  Steps that cost most:")
        lines += [f"    {c.dag_id}.{c.step_id}: {c.cost}" for c in report.costliest_steps]
    if report.advice:
        lines.append("  What to improve first:")
        lines += [f"    - {a}" for a in report.advice]
    return "\n".join(lines)


def render_cost(rows: CostList) -> str:
    """``wfe cost`` as a table: spending per DAG and its budgets."""
    if not rows.root:
        return "No costs recorded in the last 30 days."
    lines = [f"{'DAG_ID':<32} {'TODAY':>10} {'MONTH':>10} {'30 DAYS':>10} {'PER RUN':>9}  BUDGETS"]
    for row in rows.root:
        spent = {"dag_day": row.today, "dag_month": row.month, "run": None}
        shown = []
        for scope in ("dag_day", "dag_month", "run"):
            if scope in row.budgets:
                used = spent[scope]
                prefix = f"{used:.2f}/" if used is not None else "max "
                shown.append(f"{scope} {prefix}{row.budgets[scope]:.2f}")
        lines.append(
            f"{row.dag_id:<32} {row.today:>10.2f} {row.month:>10.2f} "
            f"{row.last_30_days:>10.2f} {row.per_run_30_days:>9.2f}  "
            f"{', '.join(shown) or '-'} {row.currency}"
        )
    return "\n".join(lines)


def render_policy_decision(decision: PolicyDecision) -> str:
    """``wfe policy test`` for a person: the outcome, the policies, every rule that matched."""
    lines = [f"decision: {decision.decision}"]
    lines += [
        f"  policy {name} (version {version})"
        for name, version in sorted(decision.policies.items())
    ]
    lines += [f"  {r.outcome:<15} {r.policy}/{r.rule}: {r.message}" for r in decision.reasons]
    if decision.approval is not None:
        a = decision.approval
        who = ", ".join(a.approvers) or "any user"
        lines.append(
            f"  approval: {a.required} of {who}; triggerer excluded: {a.exclude_triggerer}"
        )
    return "\n".join(lines)
