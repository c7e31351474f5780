"""The report ``wfe demo`` prints when its runs are over: a story per run, then the figures.

Per run: its state history on one line, each gate's decision with its reasons, what the saga
compensated, what the run spent against its budget, and for a campaign the figures airflow-wfe
computes from the recorded spend and outcomes. Then the DORA figures of the deployment DAGs and the
audit chain's verification. Meant to be read in a minute: long reasons are cut, details are one
``wfe runs show`` away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_wfe.app import audit, dora
from airflow_wfe.app.campaign import campaign_figures
from airflow_wfe.app.context import AppContext
from airflow_wfe.app.costs import budgets
from airflow_wfe.app.models import RunDetail
from airflow_wfe.core.policy import load_policy_folder

__all__ = ["Outcome", "render_report"]

_WIDTH = 110


@dataclass(frozen=True)
class Outcome:
    """One demo run as it ended."""

    label: str
    expected: str
    airflow_state: str
    record: RunDetail
    seconds: float

    @property
    def as_expected(self) -> bool:
        return self.record.state == self.expected


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _history(record: RunDetail) -> str:
    states = [t.to_state for t in record.transitions]
    return " → ".join(states) if states else "(no transitions)"


def _decisions(record: RunDetail) -> list[str]:
    lines = []
    for decision in record.decisions:
        reasons = [str(r.get("message", "")) for r in decision.reasons if r.get("message")]
        who = decision.actor.removeprefix("gate:")
        text = "; ".join(reasons) or (decision.comment or "")
        head = f"{decision.step_id:<22} {decision.outcome:<15}"
        lines.append(_cut(f"{head} {text}" + (f"  ({who})" if who != decision.step_id else ""),
                          _WIDTH - 16))  # fmt: skip
    return lines


def _cost(ctx: AppContext, record: RunDetail, limits: dict[str, float]) -> str | None:
    spent = ctx.store.spent(record.dag_id, record.run_id)
    amount = float(spent.get("run") or 0.0)
    if not amount:
        return None
    currency = " ".join(spent.get("currencies", {}).get("run") or [])
    budget = limits.get("run")
    against = f" of a {budget:.2f} {currency} run budget" if budget is not None else ""
    return f"{amount:.2f} {currency}{against}"


def _campaign(ctx: AppContext, record: RunDetail) -> str | None:
    figures = campaign_figures(ctx, record.dag_id, record.run_id)
    if not figures.generations and not figures.impressions:
        return None

    def show(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else pattern.format(value)

    return (
        f"CTR {show(figures.ctr, '{:.2%}')} · CPA {show(figures.cpa, '{:.2f}')} "
        f"{figures.currency or ''} · ROI {show(figures.roi, '{:.2f}')} · "
        f"{show(figures.cost_per_generation, '{:.3f}')} {figures.currency or ''}/generation "
        f"({figures.generations:.0f} generations, {figures.conversions:.0f} conversions, "
        f"revenue {figures.revenue:.2f})"
    )


def _run_lines(ctx: AppContext, outcome: Outcome, limits: dict[str, float]) -> list[str]:
    record = outcome.record
    mark = "as expected" if outcome.as_expected else f"EXPECTED {outcome.expected}"
    lines = [
        f"■ {outcome.label}",
        f"  {record.dag_id} / {record.run_id}",
        f"  Airflow: {outcome.airflow_state}; wfe: {record.state} ({mark}) in {outcome.seconds:.0f}s",
        f"  history      {_history(record)}",
    ]
    decisions = _decisions(record)
    for index, line in enumerate(decisions):
        lines.append(f"  {'decisions' if index == 0 else '':<12} {line}")
    for compensation in record.compensations:
        step = compensation.step_id + (
            f"[{compensation.map_index}]" if compensation.map_index >= 0 else ""
        )
        lines.append(
            f"  {'compensated' if compensation.order == 1 else '':<12} {compensation.order}. "
            f"{step}: {compensation.outcome}"
        )
    cost = _cost(ctx, record, limits)
    if cost:
        lines.append(f"  {'cost':<12} {cost}")
    campaign = _campaign(ctx, record)
    if campaign:
        lines.append(f"  {'campaign':<12} {campaign}")
    return lines


def _dora_lines(ctx: AppContext, dag_ids: Sequence[str]) -> list[str]:
    lines = []
    for figures in dora.dora(ctx, dag_ids=list(dag_ids)).root:
        lead = "n/a" if figures.lead_time_seconds is None else f"{figures.lead_time_seconds:.0f}s"
        mttr = "n/a" if figures.mttr_seconds is None else f"{figures.mttr_seconds:.0f}s"
        rate = (
            "n/a" if figures.change_failure_rate is None else f"{figures.change_failure_rate:.0%}"
        )
        lines.append(
            f"  {figures.dag_id}: {figures.deployments} deployments ({figures.failures} failed), "
            f"{figures.deployment_frequency_per_day:.1f}/day, lead time {lead}, "
            f"change failure rate {rate}, MTTR {mttr}"
        )
    return lines


def render_report(
    ctx: AppContext, outcomes: Sequence[Outcome], deployment_dags: Sequence[str]
) -> tuple[str, bool]:
    """The report, and whether every run ended as expected and the audit chain verifies."""
    policies = load_policy_folder(ctx.settings.policy_path)
    lines = ["", "═" * 30 + " What airflow-wfe recorded " + "═" * 30]
    for outcome in outcomes:
        lines.append("")
        lines.extend(_run_lines(ctx, outcome, budgets(outcome.record.dag_id, policies)))
    if deployment_dags:
        lines += [
            "",
            "DORA (from the deployment runs, `wfe dora`)",
            *_dora_lines(ctx, deployment_dags),
        ]
    report = audit.verify(ctx).reports["store"]
    status = "verified" if report.ok else "BROKEN"
    lines += [
        "",
        "Audit trail (`wfe audit verify`)",
        f"  {report.events} events #{report.first_seq}..#{report.last_seq}, hash-chained, "
        f"{report.checkpoints} signed checkpoint(s), signed head: {status}",
        *(f"  {finding}" for finding in report.findings[:3]),
    ]
    ok = report.ok and all(o.as_expected for o in outcomes)
    return "\n".join(lines), ok
