"""Runs: the list (with filters and paging) and one run's whole story.

The store's contract pages by ``limit``/``offset`` and filters by DAG and state; a time window or an
opaque cursor would need new store queries, so the REST API pages the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.decisions import decision_items
from airflow_wfe.app.models.runs import (
    Compensation,
    RunDetail,
    RunList,
    RunSummary,
    StepDetail,
    Transition,
)
from airflow_wfe.core.records import RunRecord, StepRecord, TransitionRecord
from airflow_wfe.core.records import RunSummary as RunSummaryRecord
from airflow_wfe.core.states import RunState, StepState

__all__ = ["MAX_LIMIT", "compensations", "list_runs", "run_detail", "summary"]

#: The most runs one request may ask for (the REST API applies it too).
MAX_LIMIT = 10_000

_SUMMARY_FIELDS = tuple(RunSummary.model_fields)


def summary(record: RunSummaryRecord) -> RunSummary:
    """A stored run as listed."""
    return RunSummary(**{name: getattr(record, name) for name in _SUMMARY_FIELDS})


def list_runs(
    ctx: AppContext,
    *,
    dag_id: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RunList:
    """Runs, newest first, optionally of one DAG and in one state (``state`` in any case).

    Raises:
        ValueError: ``limit`` outside 0..MAX_LIMIT or a negative ``offset`` (a face reports it as a
            usage error).
    """
    if not 0 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 0 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, got {offset}")
    runs = ctx.store.list_runs(
        dag_id=dag_id, state=state.upper() if state else None, limit=limit, offset=offset
    )
    return RunList([summary(run) for run in runs])


def _transition(record: TransitionRecord) -> Transition:
    return Transition(
        from_state=record.from_state,
        to_state=record.to_state,
        at=record.at,
        actor=record.actor,
        reason=record.reason,
        try_number=record.try_number,
    )


def _step(record: StepRecord) -> StepDetail:
    return StepDetail(
        step_id=record.step_id,
        map_index=record.map_index,
        state=record.state,
        try_number=record.try_number,
        created_at=record.created_at,
        updated_at=record.updated_at,
        transitions=[_transition(t) for t in record.transitions],
    )


_ENDED = (StepState.COMPENSATED, StepState.COMPENSATION_FAILED)


def compensations(steps: Sequence[StepRecord]) -> list[Compensation]:
    """Each compensated step instance, in the order its compensation started, with its outcome."""
    found = []
    for step in steps:
        started = next((t for t in step.transitions if t.to_state == StepState.COMPENSATING), None)
        if started is None:
            continue
        ended = next((t for t in step.transitions if t.to_state in _ENDED), None)
        found.append((step, started, ended))
    found.sort(key=lambda item: item[1].at.isoformat())
    return [
        Compensation(
            step_id=step.step_id,
            map_index=step.map_index,
            outcome=ended.to_state if ended else str(RunState.COMPENSATING),
            started_at=started.at,
            ended_at=ended.at if ended else None,
            reason=ended.reason if ended else started.reason,
            order=order,
        )
        for order, (step, started, ended) in enumerate(found, start=1)
    ]


def detail(record: RunRecord, ctx: AppContext) -> RunDetail:
    """A stored run with its decisions, as ``runs show`` returns it."""
    fields = {name: getattr(record, name) for name in _SUMMARY_FIELDS}
    return RunDetail(
        **fields,
        transitions=[_transition(t) for t in record.transitions],
        steps=[_step(s) for s in record.steps],
        compensations=compensations(record.steps),
        decisions=decision_items(ctx.store.decisions(record.dag_id, record.run_id)),
    )


def run_detail(ctx: AppContext, dag_id: str, run_id: str) -> RunDetail:
    """One run: transitions, steps with theirs, compensations and gate decisions.

    Raises:
        RunNotFoundError: no such run in the store.
    """
    return detail(ctx.store.get_run(dag_id, run_id), ctx)
