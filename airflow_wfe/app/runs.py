"""Runs: the list (with filters and paging) and one run's whole story.

Two ways to page the list: ``limit``/``offset`` (what ``wfe runs list`` prints), and keyset pages
with an opaque cursor (:func:`page_runs`, what the REST API and the pages use): filtered in SQL by
a set of DAGs (the ones a user may read), a state and a creation-time window, each page one index
range scan however deep it is.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.decisions import decision_items
from airflow_wfe.app.models.runs import (
    Compensation,
    RunArtifact,
    RunDetail,
    RunList,
    RunSummary,
    StepDetail,
    Transition,
)
from airflow_wfe.core.records import RunRecord, StepRecord, TransitionRecord
from airflow_wfe.core.records import RunSummary as RunSummaryRecord
from airflow_wfe.core.states import RunState, StepState
from airflow_wfe.exceptions import UsageError

__all__ = [
    "MAX_LIMIT",
    "compensations",
    "count_runs",
    "list_runs",
    "page_runs",
    "run_detail",
    "summary",
]

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


def _window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise UsageError(
            f"the window is empty: since {since.isoformat()} is not before until "
            f"{until.isoformat()}",
            argument="since",
        )


def page_runs(
    ctx: AppContext,
    *,
    dag_ids: Collection[str] | None = None,
    state: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[RunList, str | None]:
    """A page of runs newest first and the cursor of the next page (``None`` on the last).

    ``dag_ids`` ``None`` is every DAG, an empty collection none (a caller allowed on no DAG gets
    an empty page). ``since`` is inclusive, ``until`` exclusive (creation time; naive is UTC).

    Raises:
        UsageError: ``limit`` outside 1..MAX_LIMIT, an empty window, or a cursor the store did
            not make.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"must be between 1 and {MAX_LIMIT}, got {limit}", argument="limit")
    _window(since, until)
    found, following = ctx.store.page_runs(
        dag_ids=dag_ids,
        state=state.upper() if state else None,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return RunList([summary(run) for run in found]), following


def count_runs(
    ctx: AppContext,
    *,
    dag_ids: Collection[str] | None = None,
    state: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """How many runs :func:`page_runs` would page through with the same filters."""
    _window(since, until)
    return ctx.store.count_runs(
        dag_ids=dag_ids, state=state.upper() if state else None, since=since, until=until
    )


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
        artifacts=[
            RunArtifact(name=use.name or "", version=use.version, used_at=use.used_at)
            for use in ctx.store.artifacts.used_by_run(record.dag_id, record.run_id)
        ],
    )


def run_detail(ctx: AppContext, dag_id: str, run_id: str) -> RunDetail:
    """One run: transitions, steps with theirs, compensations and gate decisions.

    Raises:
        RunNotFoundError: no such run in the store.
    """
    found = detail(ctx.store.get_run(dag_id, run_id), ctx)
    from airflow_wfe.app.spool import spooled_for_run

    waiting = spooled_for_run(dag_id, run_id)
    return found.model_copy(update={"spooled": waiting}) if waiting else found
