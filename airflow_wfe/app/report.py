"""From metrics to optimisation: what the run history says to improve first.

``wfe report`` reads the window's runs, steps and business metrics from the store and ranks what
costs the most time, retries, failures and money: the slowest steps (p50/p95 of their tries), the
most retried steps with their commonest errors, how often runs fail and get compensated, gates that
deny most, and cost per run with its trend and the steps that spend most.
Everything but :func:`report_for` (the use case: read the window, then compute) is pure computation
over records, so it is tested without Airflow.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_wfe.adapters.task.business_metrics import COST_METRIC
from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.metrics import Report as ReportModel
from airflow_wfe.core.states import RunState, StepState

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import BusinessMetric, RunHistory, StepHistory

__all__ = [
    "COST_METRIC",
    "Report",
    "build_report",
    "percentile",
    "report_for",
    "report_model",
]

_TOP = 5


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank: always a value that was observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Report:
    """The findings of one window, JSON-ready through :meth:`to_json`."""

    window_start: datetime
    window_end: datetime
    dag_ids: tuple[str, ...]
    runs: int
    runs_by_state: dict[str, int]
    failure_rate: float | None
    compensation_rate: float | None
    slowest_steps: list[dict[str, Any]] = field(default_factory=list)
    most_retried_steps: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    cost_per_run: list[dict[str, Any]] = field(default_factory=list)
    costliest_steps: list[dict[str, Any]] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (datetimes in ISO 8601)."""
        return {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "dag_ids": list(self.dag_ids),
            "runs": self.runs,
            "runs_by_state": self.runs_by_state,
            "failure_rate": self.failure_rate,
            "compensation_rate": self.compensation_rate,
            "slowest_steps": self.slowest_steps,
            "most_retried_steps": self.most_retried_steps,
            "gates": self.gates,
            "cost_per_run": self.cost_per_run,
            "costliest_steps": self.costliest_steps,
            "advice": self.advice,
        }


def _try_durations(step: StepHistory) -> list[float]:
    """Seconds of each try: from entering RUNNING to leaving it."""
    durations = []
    entered: datetime | None = None
    for t in step.transitions:
        if t.to_state == StepState.RUNNING:
            entered = t.at
        elif t.from_state == StepState.RUNNING and entered is not None:
            durations.append((t.at - entered).total_seconds())
            entered = None
    return durations


def build_report(
    runs: Sequence[RunHistory],
    steps: Sequence[StepHistory],
    metrics: Sequence[BusinessMetric],
    *,
    window_end: datetime,
    window: timedelta,
    dag_ids: Sequence[str] = (),
    gate_decisions: Sequence[tuple[str, str]] = (),
) -> Report:
    """Rank what to improve from one window's history (pure: no store, no clock).

    ``metrics`` named ``cost`` (business metrics and the cost ledger's entries) make the cost
    sections; ``gate_decisions`` are ``(policy, outcome)`` pairs of the window's gate decisions.
    """
    by_state = Counter(run.state for run in runs)
    finished = sum(
        n for state, n in by_state.items() if state not in {"RUNNING", "CREATED", "VALIDATED"}
    )
    failed_runs = [
        run for run in runs if any(t.to_state == RunState.FAILED for t in run.transitions)
    ]
    compensated = [
        run for run in runs if any(t.to_state == RunState.COMPENSATING for t in run.transitions)
    ]

    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    retries: dict[tuple[str, str], int] = Counter()
    errors: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for step in steps:
        key = (step.dag_id, step.step_id)
        durations[key].extend(_try_durations(step))
        for t in step.transitions:
            if t.from_state == StepState.RUNNING and t.to_state in (
                StepState.RETRYING,
                StepState.FAILED,
            ):
                if t.to_state == StepState.RETRYING:
                    retries[key] += 1
                if t.reason:
                    errors[key][t.reason.splitlines()[0][:200]] += 1
    slow = sorted(
        ((key, values) for key, values in durations.items() if values),
        key=lambda item: (-percentile(item[1], 95), item[0]),
    )[:_TOP]
    slowest = [
        {
            "dag_id": dag_id,
            "step_id": step_id,
            "tries": len(values),
            "p50_seconds": round(percentile(values, 50), 3),
            "p95_seconds": round(percentile(values, 95), 3),
        }
        for (dag_id, step_id), values in slow
    ]
    retried = [
        {
            "dag_id": dag_id,
            "step_id": step_id,
            "retries": count,
            "errors": [
                {"error": error, "count": n}
                for error, n in errors[(dag_id, step_id)].most_common(3)
            ],
        }
        for (dag_id, step_id), count in sorted(
            retries.items(), key=lambda item: (-item[1], item[0])
        )[:_TOP]
    ]

    cost_by_run: dict[tuple[str, str], float] = defaultdict(float)
    cost_at: dict[tuple[str, str], datetime] = {}
    cost_by_step: dict[tuple[str, str | None], float] = defaultdict(float)
    for metric in metrics:
        if metric.name != COST_METRIC:
            continue
        run_key = (metric.dag_id, metric.run_id)
        cost_by_run[run_key] += metric.value
        cost_at[run_key] = min(metric.at, cost_at.get(run_key, metric.at))
        cost_by_step[(metric.dag_id, metric.step_id)] += metric.value
    per_day: dict[str, list[float]] = defaultdict(list)
    for run_key, total in cost_by_run.items():
        per_day[cost_at[run_key].date().isoformat()].append(total)
    trend = [
        {"day": day, "runs": len(values), "mean_cost_per_run": round(sum(values) / len(values), 6)}
        for day, values in sorted(per_day.items())
    ]
    costliest = [
        {"dag_id": dag_id, "step_id": step_id, "cost": round(total, 6)}
        for (dag_id, step_id), total in sorted(
            cost_by_step.items(), key=lambda item: (-item[1], item[0][0], str(item[0][1]))
        )[:_TOP]
    ]

    report = Report(
        window_start=window_end - window,
        window_end=window_end,
        dag_ids=tuple(dag_ids),
        runs=len(runs),
        runs_by_state=dict(sorted(by_state.items())),
        failure_rate=round(len(failed_runs) / finished, 6) if finished else None,
        compensation_rate=round(len(compensated) / len(failed_runs), 6) if failed_runs else None,
        slowest_steps=slowest,
        most_retried_steps=retried,
        cost_per_run=trend,
        costliest_steps=costliest,
        gates=_gates(gate_decisions),
    )
    report.advice.extend(_advice(report))
    return report


def _gates(decisions: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Policies by how often their gates denied (then by how often they decided at all)."""
    total: Counter[str] = Counter(policy for policy, _ in decisions)
    denied: Counter[str] = Counter(policy for policy, outcome in decisions if outcome == "deny")
    ranked = sorted(total, key=lambda policy: (-denied[policy], -total[policy], policy))
    return [
        {"policy": policy, "decisions": total[policy], "deny": denied[policy]}
        for policy in ranked[:_TOP]
    ]


def _advice(report: Report) -> list[str]:
    advice = []
    if report.slowest_steps:
        top = report.slowest_steps[0]
        advice.append(
            f"{top['dag_id']}.{top['step_id']} is the slowest step (p95 {top['p95_seconds']}s): "
            "parallelise it, split it, or cache its inputs."
        )
    if report.most_retried_steps:
        top = report.most_retried_steps[0]
        cause = top["errors"][0]["error"] if top["errors"] else "no error recorded"
        advice.append(
            f"{top['dag_id']}.{top['step_id']} retried {top['retries']} time(s), mostly: {cause}; "
            "fix the cause or mark it non-retryable."
        )
    if report.failure_rate is not None and report.failure_rate > 0.1:
        advice.append(
            f"{report.failure_rate:.0%} of finished runs failed: start with the most retried steps."
        )
    if report.costliest_steps:
        top = report.costliest_steps[0]
        advice.append(f"{top['dag_id']}.{top['step_id']} spends most ({top['cost']}).")
    return advice


def report_model(report: Report) -> ReportModel:
    """The computed report as the response model every face returns."""
    return ReportModel.model_validate(
        {**{name: getattr(report, name) for name in ReportModel.model_fields}}
    )


def report_for(
    ctx: AppContext,
    *,
    dag_ids: Sequence[str] | None = None,
    window: timedelta = timedelta(days=7),
    now: datetime | None = None,
) -> ReportModel:
    """What to improve first over the last ``window`` (``wfe report``), for some DAGs or all."""
    end = now or datetime.now(UTC)
    since = end - window
    chosen = sorted(set(dag_ids)) if dag_ids else None
    store = ctx.store
    return report_model(
        build_report(
            store.run_histories(chosen, since),
            store.step_histories(chosen, since),
            [
                *store.business_metrics(dag_ids=chosen, since=since),
                *store.ledger_as_metrics(dag_ids=chosen, since=since),
            ],
            window_end=end,
            window=window,
            dag_ids=chosen or (),
            gate_decisions=store.gate_decisions(dag_ids=chosen, since=since),
        )
    )
