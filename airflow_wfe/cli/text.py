"""Human-readable text for runs: what ``wfe runs list`` and ``wfe runs show`` print without ``--json``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow_wfe.core.records import RunRecord, RunSummary, StepRecord, TransitionRecord

__all__ = ["compensations", "render_run", "render_run_list"]


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _step_label(step: StepRecord) -> str:
    return step.step_id if step.map_index < 0 else f"{step.step_id}[{step.map_index}]"


def _transition_line(transition: TransitionRecord, indent: str) -> str:
    source = transition.from_state or "(new)"
    move = f"{source} → {transition.to_state}"
    attempt = f" try {transition.try_number}" if transition.try_number else ""
    reason = f"  {transition.reason}" if transition.reason else ""
    return f"{indent}{_time(transition.at)}  {move:<28} {transition.actor:<10}{attempt}{reason}"


def compensations(run: RunRecord) -> list[dict[str, object]]:
    """Each compensated step instance, in the order its compensation started, with its outcome."""
    found = []
    for step in run.steps:
        started = next((t for t in step.transitions if t.to_state == "COMPENSATING"), None)
        if started is None:
            continue
        ended = next(
            (t for t in step.transitions
             if t.to_state in ("COMPENSATED", "COMPENSATION_FAILED")),
            None,
        )  # fmt: skip
        found.append(
            {
                "step_id": step.step_id,
                "map_index": step.map_index,
                "outcome": ended.to_state if ended else "COMPENSATING",
                "started_at": started.at.isoformat(),
                "ended_at": ended.at.isoformat() if ended else None,
                "reason": ended.reason if ended else started.reason,
            }
        )
    found.sort(key=lambda item: str(item["started_at"]))
    for order, item in enumerate(found, start=1):
        item["order"] = order
    return found


def render_run(run: RunRecord) -> str:
    """The whole story of one run: its transitions, then each step with its own."""
    lines = [
        f"Run {run.dag_id} / {run.run_id}: {run.state}",
        f"  run type: {run.run_type or '-'}   DAG version: {run.dag_version_id or '-'}",
        f"  created {_time(run.created_at)}   last change {_time(run.updated_at)}",
    ]
    if run.spec_version or run.spec_hash:
        lines.append(
            f"  workflow spec: version {run.spec_version or '-'}, "
            f"content hash {(run.spec_hash or '-')[:12]}"
        )
    lines += [
        "",
        "  Run transitions",
    ]
    lines += [_transition_line(t, "    ") for t in run.transitions]
    lines += ["", f"  Steps ({len(run.steps)})"]
    for step in run.steps:
        retries = max(0, step.try_number - 1)
        retried = f", {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        tries = f"try {step.try_number}{retried}" if step.try_number else "never ran"
        lines.append(f"    {_step_label(step)}: {step.state} ({tries})")
        lines += [_transition_line(t, "      ") for t in step.transitions]
    undone = compensations(run)
    if undone:
        lines += ["", "  Compensations (in the order they ran)"]
        for item in undone:
            label = (
                item["step_id"]
                if int(str(item["map_index"])) < 0
                else (f"{item['step_id']}[{item['map_index']}]")
            )
            lines.append(f"    {item['order']}. {label}: {item['outcome']}  ({item['reason']})")
    return "\n".join(lines)


def decision_items(found: Sequence[Any]) -> list[dict[str, Any]]:
    """Gate decisions and approvals as ``runs show --json`` lists them."""
    return [
        {
            "step_id": d.step_id,
            "kind": d.kind,
            "outcome": d.outcome,
            "at": d.at.isoformat(),
            "actor": d.actor,
            "policies": dict(d.policies),
            "reasons": [dict(r) for r in d.reasons],
            "comment": d.details.get("comment"),
        }
        for d in found
    ]


def render_decisions(found: Sequence[Any]) -> list[str]:
    """The "Decisions" section of ``runs show``: every gate decision with its policy versions and
    reasons, every approval with who answered and their comment."""
    if not found:
        return []
    lines = ["", "  Decisions"]
    for d in found:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(d.policies.items())) or "-"
        head = f"    {_time(d.at)}  {d.step_id}: {d.kind} {d.outcome.upper()}  by {d.actor}"
        lines.append(head + (f"  (policies: {versions})" if d.kind == "policy" else ""))
        for reason in d.reasons:
            where = f"  [{reason['policy']}/{reason['rule']}]" if "rule" in reason else ""
            outcome = f"{reason['outcome']}: " if "outcome" in reason else ""
            lines.append(f"      {outcome}{reason.get('message', '')}{where}")
        if d.details.get("comment"):
            lines.append(f"      comment: {d.details['comment']}")
    return lines


def render_run_list(runs: Sequence[RunSummary]) -> str:
    """One line per run, newest first, aligned like ``airflow dags list``."""
    if not runs:
        return "No governed runs recorded yet."
    rows = [("DAG_ID", "RUN_ID", "STATE", "RUN_TYPE", "UPDATED")]
    rows += [(r.dag_id, r.run_id, r.state, r.run_type or "-", _time(r.updated_at)) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
