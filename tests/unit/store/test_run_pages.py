"""Keyset pages of the run list (``page_runs``), on SQLite and PostgreSQL.

What a page must hold: every run exactly once across the pages, newest first, the ties on creation
time broken the same way each time; the DAG set, state and time window applied in SQL (so an empty
DAG set is an empty page, not everything); runs recorded between two pages neither repeat nor shift
the pages after the cursor; a cursor not made by the store is a usage error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from airflow_wfe.core.records import Move
from airflow_wfe.exceptions import UsageError
from airflow_wfe.store import SqlStore

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _run(store: SqlStore, dag_id: str, run_id: str, at: datetime, *, fail: bool = False) -> None:
    moves = [Move("CREATED", None), Move("VALIDATED", None), Move("RUNNING", None)]
    if fail:
        moves.append(Move("FAILED", "boom"))
    store.advance_run(dag_id, run_id, lambda _current: moves, actor="test", at=at)


@pytest.fixture
def many(store: SqlStore) -> list[tuple[str, str]]:
    """23 runs over three DAGs; runs 10..14 share one creation time (ties broken by the key).
    Returns their keys newest first."""
    made = []
    for i in range(23):
        at = T0 + (10 if 10 <= i < 15 else i) * MINUTE
        dag = ("etl", "report", "deploy")[i % 3]
        _run(store, dag, f"r{i:02d}", at, fail=i % 4 == 0)
        made.append((at, i, (dag, f"r{i:02d}")))
    return [key for _at, _i, key in sorted(made, key=lambda m: (m[0], m[1]), reverse=True)]


def _all_pages(store: SqlStore, limit: int, **filters: object) -> list[list[tuple[str, str]]]:
    pages, cursor = [], None
    while True:
        page, cursor = store.page_runs(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        pages.append([(r.dag_id, r.run_id) for r in page])
        if cursor is None:
            return pages


@pytest.mark.parametrize("limit", [1, 4, 5, 23, 100])
def test_pages_hold_every_run_once_newest_first(
    store: SqlStore, many: list[tuple[str, str]], limit: int
) -> None:
    pages = _all_pages(store, limit)
    assert [key for page in pages for key in page] == many
    assert all(len(page) == limit for page in pages[:-1])
    assert len(pages) == max(1, -(-len(many) // limit))
    # Same order as the offset list the CLI shows.
    assert [(r.dag_id, r.run_id) for r in store.list_runs(limit=100)] == many


def test_filters_apply_in_the_query(store: SqlStore, many: list[tuple[str, str]]) -> None:
    def flat(**filters: object) -> list[tuple[str, str]]:
        return [key for page in _all_pages(store, 3, **filters) for key in page]

    assert flat(dag_ids=["etl"]) == [k for k in many if k[0] == "etl"]
    assert flat(dag_ids={"etl", "deploy"}) == [k for k in many if k[0] != "report"]
    assert flat(dag_ids=[]) == []
    assert store.page_runs(dag_ids=()) == ([], None)
    assert flat(dag_ids=["unknown"]) == []
    failed = [k for k in many if int(k[1][1:]) % 4 == 0]
    assert flat(state="FAILED") == failed
    assert flat(state="FAILED", dag_ids=["etl"]) == [k for k in failed if k[0] == "etl"]
    # since inclusive, until exclusive, on the creation time; an offset is converted to UTC.
    since, until = T0 + 18 * MINUTE, T0 + 21 * MINUTE
    window = ["r18", "r19", "r20"]
    assert [k[1] for k in flat(since=since, until=until)] == window[::-1]
    in_paris = timezone(timedelta(hours=1))
    assert [k[1] for k in flat(since=since.astimezone(in_paris))] == [
        f"r{i}" for i in range(22, 17, -1)
    ]
    assert flat(until=T0 + MINUTE) == [("etl", "r00")]

    assert store.count_runs() == 23
    assert store.count_runs(dag_ids=["etl", "deploy"]) == len(flat(dag_ids=["etl", "deploy"]))
    assert store.count_runs(dag_ids=[]) == 0
    assert store.count_runs(dag_ids=["etl"], dag_id="report") == 0
    assert store.count_runs(state="FAILED", since=since) == len(flat(state="FAILED", since=since))
    assert store.count_runs(since=since, until=until) == 3


def test_runs_recorded_between_pages_do_not_shift_the_next(
    store: SqlStore, many: list[tuple[str, str]]
) -> None:
    first, cursor = store.page_runs(limit=5)
    _run(store, "etl", "newer", T0 + 99 * MINUTE)
    _run(store, "etl", "tie-of-the-last", first[-1].created_at)
    second, _ = store.page_runs(limit=5, cursor=cursor)
    assert [(r.dag_id, r.run_id) for r in second] == many[5:10]


def test_a_foreign_cursor_is_a_usage_error(store: SqlStore, many: list[tuple[str, str]]) -> None:
    for bad in ("nonsense", "W10", "WyJ4IiwxXQ", "WyIyMDI2LTAxLTAxIiwidHdvIl0", "%%%"):
        with pytest.raises(UsageError) as caught:
            store.page_runs(cursor=bad)
        assert caught.value.argument == "cursor"


def test_pages_use_the_run_list_indexes(store: SqlStore) -> None:
    """The plan of a filtered page walks an index instead of sorting the table."""
    _run(store, "etl", "r", T0)
    if store._engine.dialect.name != "sqlite":
        pytest.skip("the plan's wording is SQLite's; PostgreSQL picks by statistics")
    with store._engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT * FROM wfe_run WHERE dag_id IN ('a', 'b') "
                    "AND (created_at, id) < ('2026-03-01 10:00:00.000000', 9) "
                    "ORDER BY created_at DESC, id DESC LIMIT 51"
                )
            )
        )
        overall = " ".join(
            str(row[-1])
            for row in connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT * FROM wfe_run "
                    "ORDER BY created_at DESC, id DESC LIMIT 51"
                )
            )
        )
    assert "ix_wfe_run_created_at_id" in overall, overall
    assert "TEMP B-TREE" not in overall, overall
    assert "ix_wfe_run_" in plan, plan
