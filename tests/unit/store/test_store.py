"""The SQL state store (and the recorder on top of it) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import RunState, StepState
from airflow_wfe.engine.recorder import UNCHECKED_REASON, Recorder
from airflow_wfe.exceptions import (
    IllegalTransitionError,
    RunNotFoundError,
    SchemaOutdatedError,
    StoreUnavailableError,
)
from airflow_wfe.store import Move, SqlStore, TransitionRecord, schema
from airflow_wfe.store import engine as engine_module
from airflow_wfe.store.contract import StepPlan
from airflow_wfe.store.tables import run_table, step_table, transition_table

R = RunState
T = StepState
T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
STORE_TABLES = {"wfe_run", "wfe_step", "wfe_transition", schema.VERSION_TABLE}


@pytest.fixture
def recorder(store: SqlStore) -> Recorder:
    return Recorder(store, NullEmitter())


# -- helpers -----------------------------------------------------------------------------------


def moves(*states: str, reason: str | None = None) -> list[Move]:
    return [Move(state, reason) for state in states]


def edges(transitions: Sequence[TransitionRecord]) -> list[tuple[str | None, str]]:
    return [(t.from_state, t.to_state) for t in transitions]


def start_run(store: SqlStore, dag_id: str, run_id: str, *, at: datetime | None = None) -> None:
    store.advance_run(
        dag_id, run_id, lambda _c: moves("CREATED", "VALIDATED", "RUNNING"), actor="test", at=at
    )


def row_counts(store: SqlStore) -> tuple[int, int, int]:
    """(runs, steps, transitions) straight from the tables."""
    with store._engine.connect() as connection:
        return (
            int(connection.execute(select(func.count()).select_from(run_table)).scalar_one()),
            int(connection.execute(select(func.count()).select_from(step_table)).scalar_one()),
            int(
                connection.execute(select(func.count()).select_from(transition_table)).scalar_one()
            ),
        )


def is_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


# -- schema ------------------------------------------------------------------------------------


def test_schema_is_created_on_an_empty_database(url: str) -> None:
    engine = engine_module.get_engine(url)
    assert schema.current_revision(engine) is None
    assert not STORE_TABLES & set(inspect(engine).get_table_names())

    store = SqlStore(url)
    assert store.list_runs() == []

    assert schema.current_revision(store._engine) == schema.HEAD_REVISION
    assert set(inspect(store._engine).get_table_names()) >= STORE_TABLES
    assert url in schema._checked


def test_head_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "airflow_wfe.store:migrations")
    assert ScriptDirectory.from_config(config).get_heads() == [schema.HEAD_REVISION]


def test_second_store_on_same_url_reuses_the_schema(url: str) -> None:
    start_run(SqlStore(url), "deploy", "r1")
    schema._checked.clear()
    assert SqlStore(url).get_run("deploy", "r1").state == "RUNNING"


def test_outdated_schema_is_refused(url: str) -> None:
    store = SqlStore(url)
    start_run(store, "deploy", "r1")
    with store._engine.begin() as connection:
        connection.execute(text(f"DELETE FROM {schema.VERSION_TABLE}"))
        connection.execute(
            text(f"INSERT INTO {schema.VERSION_TABLE} (version_num) VALUES ('0000')")
        )
    engine_module.dispose_engines()
    schema._checked.clear()

    reopened = SqlStore(url)
    with pytest.raises(SchemaOutdatedError) as info:
        reopened.get_run("deploy", "r1")
    error = info.value
    assert error.found == "0000"
    assert error.expected == schema.HEAD_REVISION
    assert "`wfe db upgrade`" in str(error)
    assert "0000" in str(error)
    # Writers are refused the same way, and nothing is migrated implicitly.
    with pytest.raises(SchemaOutdatedError):
        reopened.advance_run("deploy", "r2", lambda _c: moves("CREATED"), actor="test")
    assert schema.current_revision(engine_module.get_engine(url)) == "0000"


# -- unavailable stores ------------------------------------------------------------------------


def test_sqlite_folder_missing_is_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such" / "folder"
    store = SqlStore(f"sqlite:///{folder}/wfe.db")
    with pytest.raises(StoreUnavailableError) as info:
        store.list_runs()
    assert str(folder.resolve()) in str(info.value)
    assert "does not exist" in str(info.value)
    with pytest.raises(StoreUnavailableError):
        store.advance_run("deploy", "r1", lambda _c: moves("CREATED"), actor="test")
    assert not folder.exists()


def test_postgres_refused_connection_is_unavailable_and_masks_password() -> None:
    pytest.importorskip("psycopg")
    secret = "Sup3r-Secret-pw"
    store = SqlStore(f"postgresql+psycopg://wfe_user:{secret}@127.0.0.1:1/test")
    with pytest.raises(StoreUnavailableError) as info:
        store.list_runs()
    error = info.value
    assert secret not in str(error)
    assert secret not in error.url
    assert error.url == "postgresql+psycopg://wfe_user:***@127.0.0.1:1/test"
    assert "127.0.0.1:1" in str(error)
    with pytest.raises(StoreUnavailableError) as info:
        store.advance_run("deploy", "r1", lambda _c: moves("CREATED"), actor="test")
    assert secret not in str(info.value)


# -- runs ----------------------------------------------------------------------------------------


def test_run_transitions_read_back_in_order(store: SqlStore) -> None:
    seen: list[RunState | None] = []

    def plan(current: RunState | None) -> list[Move]:
        seen.append(current)
        return [
            Move("CREATED", "run created (manual)"),
            Move("VALIDATED", "pre-flight passed"),
            Move("RUNNING", "first task started"),
        ]

    written = store.advance_run(
        "deploy",
        "r1",
        plan,
        actor="scheduler",
        at=T0,
        facts={"run_type": "manual", "dag_version_id": "v7"},
    )
    assert seen == [None]
    expected_edges = [(None, "CREATED"), ("CREATED", "VALIDATED"), ("VALIDATED", "RUNNING")]
    assert edges(written) == expected_edges

    run = store.get_run("deploy", "r1")
    assert (run.dag_id, run.run_id, run.state) == ("deploy", "r1", "RUNNING")
    assert (run.run_type, run.dag_version_id) == ("manual", "v7")
    assert edges(run.transitions) == expected_edges
    assert [t.reason for t in run.transitions] == [
        "run created (manual)",
        "pre-flight passed",
        "first task started",
    ]
    assert {t.actor for t in run.transitions} == {"scheduler"}
    for transition in run.transitions:
        assert is_utc(transition.at), transition.at
        assert transition.at == T0
        assert transition.step_id is None
        assert transition.map_index is None
    assert is_utc(run.created_at)
    assert run.created_at == T0
    assert run.updated_at == T0
    assert run.steps == ()


def test_default_timestamp_is_now_in_utc(store: SqlStore) -> None:
    before = datetime.now(UTC)
    start_run(store, "deploy", "r1")
    after = datetime.now(UTC)
    run = store.get_run("deploy", "r1")
    for transition in run.transitions:
        assert is_utc(transition.at)
        assert before - timedelta(seconds=1) <= transition.at <= after + timedelta(seconds=1)


@pytest.mark.parametrize("hours", [2, -5])
def test_timestamp_with_another_offset_is_the_same_instant(store: SqlStore, hours: int) -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=hours)))
    start_run(store, "deploy", "r1", at=at)
    run = store.get_run("deploy", "r1")
    assert run.created_at == at
    assert [t.at for t in run.transitions] == [at, at, at]
    assert all(is_utc(t.at) for t in run.transitions)


def test_later_advance_sees_current_state_and_appends(store: SqlStore) -> None:
    start_run(store, "deploy", "r1", at=T0)
    seen: list[RunState | None] = []

    def plan(current: RunState | None) -> list[Move]:
        seen.append(current)
        return [Move("COMPLETED", "all tasks succeeded")]

    later = T0 + timedelta(minutes=5)
    written = store.advance_run("deploy", "r1", plan, actor="listener", at=later)
    assert seen == [R.RUNNING]
    assert edges(written) == [("RUNNING", "COMPLETED")]
    run = store.get_run("deploy", "r1")
    assert run.state == "COMPLETED"
    assert edges(run.transitions)[-1] == ("RUNNING", "COMPLETED")
    assert len(run.transitions) == 4
    assert run.transitions[-1].actor == "listener"
    assert (run.created_at, run.updated_at) == (T0, later)


def test_illegal_run_move_raises_and_writes_nothing(store: SqlStore) -> None:
    start_run(store, "deploy", "r1", at=T0)
    before = store.get_run("deploy", "r1")
    counts = row_counts(store)

    # The first move is legal, the second is not: the whole plan is refused.
    with pytest.raises(IllegalTransitionError) as info:
        store.advance_run(
            "deploy",
            "r1",
            lambda _c: moves("FAILED", "COMPLETED"),
            actor="test",
            at=T0 + timedelta(hours=1),
        )
    assert str(info.value) == (
        "run 'deploy/r1' cannot go FAILED → COMPLETED; allowed: COMPENSATING"
    )
    after = store.get_run("deploy", "r1")
    assert after == before
    assert after.state == "RUNNING"
    assert row_counts(store) == counts


def test_illegal_plan_for_a_new_run_creates_nothing(store: SqlStore) -> None:
    with pytest.raises(IllegalTransitionError) as info:
        store.advance_run(
            "deploy", "r1", lambda _c: moves("CREATED", "VALIDATED", "COMPLETED"), actor="test"
        )
    assert info.value.from_state == "VALIDATED"
    with pytest.raises(IllegalTransitionError):
        store.advance_run("deploy", "r1", lambda _c: moves("RUNNING"), actor="test")
    with pytest.raises(RunNotFoundError):
        store.get_run("deploy", "r1")
    assert store.count_runs() == 0
    assert row_counts(store) == (0, 0, 0)


def test_empty_plan_writes_nothing(store: SqlStore) -> None:
    assert store.advance_run("deploy", "r1", lambda _c: [], actor="test") == []
    with pytest.raises(RunNotFoundError):
        store.get_run("deploy", "r1")
    assert row_counts(store) == (0, 0, 0)

    start_run(store, "deploy", "r1", at=T0)
    before = store.get_run("deploy", "r1")
    assert store.advance_run("deploy", "r1", lambda _c: [], actor="x", at=T0 + timedelta(1)) == []
    assert store.get_run("deploy", "r1") == before

    store.advance_step("deploy", "r1", "extract", -1, lambda _c, _t: moves("PENDING"), actor="t")
    counts = row_counts(store)
    assert store.advance_step("deploy", "r1", "extract", -1, lambda _c, _t: [], actor="t") == []
    assert store.advance_step("deploy", "r1", "new", -1, lambda _c, _t: [], actor="t") == []
    assert row_counts(store) == counts
    assert store.step_states("deploy", "r1") == {("extract", -1): T.PENDING}


# -- steps ---------------------------------------------------------------------------------------


def test_steps_per_map_index_are_distinct(store: SqlStore) -> None:
    start_run(store, "etl", "r1", at=T0)
    for index, target in [(-1, "RUNNING"), (0, "PENDING"), (1, "RUNNING"), (2, "SKIPPED")]:
        chain = ["PENDING"] if target == "PENDING" else ["PENDING", target]
        store.advance_step(
            "etl",
            "r1",
            "transform",
            index,
            lambda _c, _t, chain=chain: moves(*chain),
            actor="listener",
            try_number=1,
            at=T0,
        )
    assert store.step_states("etl", "r1") == {
        ("transform", -1): T.RUNNING,
        ("transform", 0): T.PENDING,
        ("transform", 1): T.RUNNING,
        ("transform", 2): T.SKIPPED,
    }
    run = store.get_run("etl", "r1")
    assert len(run.steps) == 4
    assert len({(s.step_id, s.map_index) for s in run.steps}) == 4
    by_index = {s.map_index: s for s in run.steps}
    assert edges(by_index[0].transitions) == [(None, "PENDING")]
    assert edges(by_index[2].transitions) == [(None, "PENDING"), ("PENDING", "SKIPPED")]
    for step in run.steps:
        assert {t.map_index for t in step.transitions} == {step.map_index}
        assert {t.step_id for t in step.transitions} == {"transform"}
        assert all(is_utc(t.at) for t in step.transitions)
        assert is_utc(step.created_at)
        assert step.try_number == 1
    # Step transitions are not run transitions.
    assert edges(run.transitions) == [
        (None, "CREATED"),
        ("CREATED", "VALIDATED"),
        ("VALIDATED", "RUNNING"),
    ]


def test_step_plan_sees_state_and_try_number(store: SqlStore) -> None:
    start_run(store, "etl", "r1")
    seen: list[tuple[StepState | None, int]] = []

    def plan_to(*states: str) -> StepPlan:
        def plan(current: StepState | None, current_try: int) -> list[Move]:
            seen.append((current, current_try))
            return moves(*states)

        return plan

    store.advance_step(
        "etl", "r1", "load", -1, plan_to("PENDING", "RUNNING"), actor="t", try_number=1
    )
    store.advance_step(
        "etl", "r1", "load", -1, plan_to("RETRYING", "RUNNING"), actor="t", try_number=3
    )
    # A lower try number never lowers the stored one.
    store.advance_step("etl", "r1", "load", -1, plan_to("SUCCEEDED"), actor="t", try_number=2)
    assert seen == [(None, 0), (T.RUNNING, 1), (T.RUNNING, 3)]
    (step,) = store.get_run("etl", "r1").steps
    assert step.state == "SUCCEEDED"
    assert step.try_number == 3
    assert [t.try_number for t in step.transitions] == [1, 1, 3, 3, 2]


def test_illegal_step_move_raises_and_writes_nothing(store: SqlStore) -> None:
    start_run(store, "etl", "r1")
    store.advance_step(
        "etl", "r1", "load", 4, lambda _c, _t: moves("PENDING", "RUNNING"), actor="t"
    )
    before = store.get_run("etl", "r1")
    counts = row_counts(store)
    with pytest.raises(IllegalTransitionError) as info:
        store.advance_step(
            "etl", "r1", "load", 4, lambda _c, _t: moves("SUCCEEDED", "RUNNING"), actor="t"
        )
    assert str(info.value) == (
        "step 'etl/r1/load[4]' cannot go SUCCEEDED → RUNNING; allowed: COMPENSATING"
    )
    with pytest.raises(IllegalTransitionError):
        store.advance_step("etl", "r1", "new", -1, lambda _c, _t: moves("RUNNING"), actor="t")
    assert store.get_run("etl", "r1") == before
    assert row_counts(store) == counts
    assert store.step_states("etl", "r1") == {("load", 4): T.RUNNING}


def test_step_of_unknown_run_raises_run_not_found(store: SqlStore) -> None:
    start_run(store, "etl", "other")
    with pytest.raises(RunNotFoundError) as info:
        store.advance_step("etl", "missing", "load", -1, lambda _c, _t: moves("PENDING"), actor="t")
    assert (info.value.dag_id, info.value.run_id) == ("etl", "missing")
    assert "etl/missing" in str(info.value)
    with pytest.raises(RunNotFoundError):
        store.get_run("etl", "missing")
    assert store.step_states("etl", "missing") == {}
    assert row_counts(store) == (1, 0, 3)


def test_step_states(store: SqlStore) -> None:
    start_run(store, "etl", "r1")
    start_run(store, "etl", "r2")
    plans = {
        ("extract", -1): ("PENDING", "RUNNING", "SUCCEEDED"),
        ("transform", 0): ("PENDING", "RUNNING"),
        ("transform", 1): ("PENDING", "RUNNING", "FAILED"),
        ("load", -1): ("PENDING", "UPSTREAM_FAILED"),
    }
    for (step_id, index), chain in plans.items():
        store.advance_step(
            "etl", "r1", step_id, index, lambda _c, _t, c=chain: moves(*c), actor="t"
        )
    store.advance_step("etl", "r2", "extract", -1, lambda _c, _t: moves("PENDING"), actor="t")

    states = store.step_states("etl", "r1")
    assert states == {key: StepState(chain[-1]) for key, chain in plans.items()}
    assert all(isinstance(state, StepState) for state in states.values())
    assert store.step_states("etl", "r2") == {("extract", -1): T.PENDING}
    assert store.step_states("other", "r1") == {}


# -- listing -----------------------------------------------------------------------------------


def test_list_runs_filters_pages_and_orders_newest_first(recorder: Recorder) -> None:
    store = recorder.store
    assert isinstance(store, SqlStore)
    minute = timedelta(minutes=1)
    # Inserted out of chronological order, so "newest first" cannot come from insertion order.
    recorder.run_finished("etl", "r3", succeeded=False, actor="t", reason="x", at=T0 + 2 * minute)
    recorder.run_started("report", "r1", actor="t", reason="x", at=T0 + 3 * minute)
    recorder.run_started("etl", "r1", actor="t", reason="x", facts={"run_type": "scheduled"}, at=T0)
    recorder.run_finished("report", "r2", succeeded=True, actor="t", reason="x", at=T0 + 4 * minute)
    recorder.run_finished("etl", "r2", succeeded=True, actor="t", reason="x", at=T0 + minute)

    def keys(
        dag_id: str | None = None, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[tuple[str, str]]:
        listed = store.list_runs(dag_id=dag_id, state=state, limit=limit, offset=offset)
        return [(r.dag_id, r.run_id) for r in listed]

    newest_first = [
        ("report", "r2"),
        ("report", "r1"),
        ("etl", "r3"),
        ("etl", "r2"),
        ("etl", "r1"),
    ]
    assert keys() == newest_first
    assert keys(dag_id="etl") == [("etl", "r3"), ("etl", "r2"), ("etl", "r1")]
    assert keys(state="RUNNING") == [("report", "r1"), ("etl", "r1")]
    assert keys(state="COMPLETED") == [("report", "r2"), ("etl", "r2")]
    assert keys(dag_id="etl", state="FAILED") == [("etl", "r3")]
    assert keys(dag_id="etl", state="REJECTED") == []
    assert keys(dag_id="nope") == []
    assert keys(limit=2) == newest_first[:2]
    assert keys(limit=2, offset=2) == newest_first[2:4]
    assert keys(limit=2, offset=4) == newest_first[4:]
    assert keys(offset=5) == []
    assert keys(dag_id="etl", limit=1, offset=1) == [("etl", "r2")]

    summaries = {(r.dag_id, r.run_id): r for r in store.list_runs()}
    assert summaries[("etl", "r1")].run_type == "scheduled"
    assert summaries[("etl", "r1")].state == "RUNNING"
    assert summaries[("etl", "r1")].created_at == T0
    assert summaries[("report", "r2")].created_at == T0 + 4 * minute
    assert all(is_utc(r.created_at) and is_utc(r.updated_at) for r in summaries.values())
    assert not hasattr(summaries[("etl", "r1")], "transitions")

    assert store.count_runs() == 5
    assert store.count_runs(dag_id="etl") == 3
    assert store.count_runs(state="RUNNING") == 2
    assert store.count_runs(dag_id="report", state="COMPLETED") == 1
    assert store.count_runs(dag_id="etl", state="COMPLETED") == 1
    assert store.count_runs(dag_id="nope") == 0


def test_empty_store_lists_nothing(store: SqlStore) -> None:
    assert store.list_runs() == []
    assert store.count_runs() == 0
    assert store.count_runs(state="RUNNING") == 0


# -- the recorder on the store -------------------------------------------------------------------


def test_run_started_is_idempotent(recorder: Recorder, store: SqlStore) -> None:
    first = recorder.run_started(
        "deploy", "r1", actor="scheduler", reason="run started", facts={"run_type": "manual"}
    )
    assert edges(first) == [(None, "CREATED"), ("CREATED", "VALIDATED"), ("VALIDATED", "RUNNING")]
    assert [t.reason for t in first] == ["run created (manual)", UNCHECKED_REASON, "run started"]
    assert recorder.run_started("deploy", "r1", actor="task", reason="task started") == []
    run = store.get_run("deploy", "r1")
    assert len(run.transitions) == 3
    assert run.run_type == "manual"


def test_step_report_is_idempotent(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("etl", "r1", actor="t", reason="x")
    first = recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", try_number=1)
    assert edges(first) == [(None, "PENDING"), ("PENDING", "RUNNING")]
    assert recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", try_number=1) == []
    assert recorder.step("etl", "r1", "load", T.RUNNING, actor="listener") == []
    done = recorder.step("etl", "r1", "load", T.SUCCEEDED, actor="listener", try_number=1)
    assert edges(done) == [("RUNNING", "SUCCEEDED")]
    assert recorder.step("etl", "r1", "load", T.SUCCEEDED, actor="listener", try_number=1) == []

    (step,) = store.get_run("etl", "r1").steps
    assert edges(step.transitions) == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUCCEEDED"),
    ]
    assert step.state == "SUCCEEDED"


def test_new_try_of_a_running_step_goes_through_retrying(
    recorder: Recorder, store: SqlStore
) -> None:
    recorder.run_started("etl", "r1", actor="t", reason="x")
    recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", map_index=2, try_number=1)
    written = recorder.step(
        "etl",
        "r1",
        "load",
        T.RUNNING,
        actor="listener",
        map_index=2,
        try_number=2,
        reason="try 2 started",
    )
    assert edges(written) == [("RUNNING", "RETRYING"), ("RETRYING", "RUNNING")]
    assert [t.reason for t in written] == ["retry reported by Airflow", "try 2 started"]
    # The same try again is a repeat, not a new retry.
    assert (
        recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", map_index=2, try_number=2)
        == []
    )
    (step,) = store.get_run("etl", "r1").steps
    assert step.map_index == 2
    assert step.try_number == 2
    assert edges(step.transitions) == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "RETRYING"),
        ("RETRYING", "RUNNING"),
    ]


def test_illegal_step_report_raises_and_writes_nothing(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("etl", "r1", actor="t", reason="x")
    recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", try_number=1)
    recorder.step("etl", "r1", "load", T.SUCCEEDED, actor="listener", try_number=1)
    counts = row_counts(store)
    with pytest.raises(IllegalTransitionError):
        recorder.step("etl", "r1", "load", T.FAILED, actor="listener", try_number=1)
    assert row_counts(store) == counts
    assert store.step_states("etl", "r1") == {("load", -1): T.SUCCEEDED}
    with pytest.raises(RunNotFoundError):
        recorder.step("etl", "nope", "load", T.RUNNING, actor="listener")


def test_reconcile_fills_in_a_never_seen_step(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("etl", "r1", actor="t", reason="x")
    written = recorder.reconcile_step(
        "etl", "r1", "load", T.UPSTREAM_FAILED, actor="reconcile", reason="upstream failed"
    )
    assert edges(written) == [(None, "PENDING"), ("PENDING", "UPSTREAM_FAILED")]
    assert {t.actor for t in written} == {"reconcile"}
    assert store.step_states("etl", "r1") == {("load", -1): T.UPSTREAM_FAILED}
    # Reconciling again is a no-op.
    assert (
        recorder.reconcile_step(
            "etl", "r1", "load", T.UPSTREAM_FAILED, actor="reconcile", reason="upstream failed"
        )
        == []
    )
    (step,) = store.get_run("etl", "r1").steps
    assert len(step.transitions) == 2


def test_reconcile_leaves_a_succeeded_step_alone(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("etl", "r1", actor="t", reason="x")
    recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", try_number=1)
    recorder.step("etl", "r1", "load", T.SUCCEEDED, actor="listener", try_number=1)
    counts = row_counts(store)
    for target in (T.FAILED, T.SUCCEEDED, T.UPSTREAM_FAILED, T.SKIPPED):
        assert (
            recorder.reconcile_step(
                "etl", "r1", "load", target, actor="reconcile", reason="run ended"
            )
            == []
        )
    assert row_counts(store) == counts
    assert store.step_states("etl", "r1") == {("load", -1): T.SUCCEEDED}


def test_reconcile_finishes_a_running_step(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("etl", "r1", actor="t", reason="x")
    recorder.step("etl", "r1", "load", T.RUNNING, actor="listener", try_number=1)
    written = recorder.reconcile_step(
        "etl", "r1", "load", T.UPSTREAM_FAILED, actor="reconcile", reason="run ended"
    )
    assert edges(written) == [("RUNNING", "RETRYING"), ("RETRYING", "UPSTREAM_FAILED")]
    assert store.step_states("etl", "r1") == {("load", -1): T.UPSTREAM_FAILED}


def test_run_finished_without_a_start_walks_the_whole_path(
    recorder: Recorder, store: SqlStore
) -> None:
    written = recorder.run_finished(
        "deploy",
        "r1",
        succeeded=False,
        actor="scheduler",
        reason="task failed",
        facts={"run_type": "manual"},
        at=T0,
    )
    expected = [
        (None, "CREATED"),
        ("CREATED", "VALIDATED"),
        ("VALIDATED", "RUNNING"),
        ("RUNNING", "FAILED"),
    ]
    assert edges(written) == expected
    run = store.get_run("deploy", "r1")
    assert run.state == "FAILED"
    assert edges(run.transitions) == expected
    assert [t.reason for t in run.transitions] == [
        "reconciled at run end",
        "reconciled at run end",
        "reconciled at run end",
        "task failed",
    ]
    # The end of the run reported again (or as success, too late) changes nothing.
    assert recorder.run_finished("deploy", "r1", succeeded=False, actor="s", reason="x") == []
    assert recorder.run_finished("deploy", "r1", succeeded=True, actor="s", reason="x") == []
    assert len(store.get_run("deploy", "r1").transitions) == 4


def test_run_finished_after_start(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("deploy", "r1", actor="t", reason="x")
    written = recorder.run_finished("deploy", "r1", succeeded=True, actor="s", reason="done")
    assert edges(written) == [("RUNNING", "COMPLETED")]
    assert store.get_run("deploy", "r1").state == "COMPLETED"


def test_transition_run_refuses_illegal_moves(recorder: Recorder, store: SqlStore) -> None:
    recorder.run_started("deploy", "r1", actor="t", reason="x")
    counts = row_counts(store)
    with pytest.raises(IllegalTransitionError) as info:
        recorder.transition_run("deploy", "r1", R.COMPENSATED, actor="cli", reason="by hand")
    assert str(info.value) == (
        "run 'deploy/r1' cannot go RUNNING → COMPENSATED; allowed: COMPLETED, FAILED, REJECTED, "
        "WAITING_APPROVAL"
    )
    assert row_counts(store) == counts
    written = recorder.transition_run(
        "deploy", "r1", R.WAITING_APPROVAL, actor="gate", reason="needs approval"
    )
    assert edges(written) == [("RUNNING", "WAITING_APPROVAL")]
    assert store.get_run("deploy", "r1").transitions[-1].actor == "gate"


def test_facts_fill_empty_provenance_once_even_without_a_move(store: SqlStore) -> None:
    def to_running(current: RunState | None) -> list[Move]:
        if current is None:
            return [Move(RunState.CREATED), Move(RunState.VALIDATED), Move(RunState.RUNNING)]
        return []

    store.advance_run("yaml", "r1", to_running, actor="scheduler", facts={"run_type": "manual"})
    written = store.advance_run(
        "yaml",
        "r1",
        to_running,
        actor="worker",
        facts={"run_type": "scheduled", "spec_version": "1.4.0", "spec_hash": "ab" * 32},
    )
    assert written == []
    run = store.get_run("yaml", "r1")
    assert (run.run_type, run.spec_version, run.spec_hash) == ("manual", "1.4.0", "ab" * 32)
    assert [t.to_state for t in run.transitions] == ["CREATED", "VALIDATED", "RUNNING"]
    with pytest.raises(ValueError, match="unknown run facts: colour"):
        store.advance_run("yaml", "r1", to_running, actor="x", facts={"colour": "red"})
