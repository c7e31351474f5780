"""Several real processes write the same run at the same moment; the store writes each fact once.

Workers are started with the ``spawn`` context (no inherited engines or SQLite handles), each builds
its own ``SqlStore`` and ``Recorder``, and they are released together by a barrier.
"""

from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
from sqlalchemy import func, select
from workers import BARRIER_TIMEOUT_S, WORKERS, WorkerResult, run_workers

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore
from airflow_wfe.store import engine as engine_module
from airflow_wfe.store.tables import run_table, step_table, transition_table

pytestmark = pytest.mark.slow

STEPS_PER_WORKER = 25
SAME_STEP_ROUNDS = 5
DAG_ID = "concurrent"
RUN_ID = "manual__2026-03-01"


# -- workers (top level: the spawn context imports this module in each child) ------------------


def _start_and_record_steps(
    store_url: str, worker: int, barrier: Barrier, results: multiprocessing.Queue[WorkerResult]
) -> None:
    """Start the shared run, then take 25 steps of its own through PENDING → RUNNING → SUCCEEDED."""
    try:
        recorder = Recorder(SqlStore(store_url), NullEmitter())
        actor = f"worker-{worker}"
        barrier.wait(BARRIER_TIMEOUT_S)
        run_written = recorder.run_started(DAG_ID, RUN_ID, actor=actor, reason="task started")
        step_written = 0
        for index in range(STEPS_PER_WORKER):
            for state in (StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED):
                step_written += len(
                    recorder.step(
                        DAG_ID,
                        RUN_ID,
                        f"task_{worker}",
                        state,
                        actor=actor,
                        map_index=index,
                        try_number=1,
                    )
                )
        results.put((worker, "ok", (len(run_written), step_written)))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))
        raise
    finally:
        engine_module.dispose_engines()


def _report_same_step_succeeded(
    store_url: str, worker: int, barrier: Barrier, results: multiprocessing.Queue[WorkerResult]
) -> None:
    """In every round, report step ``same_<round>`` SUCCEEDED at the same moment as the others."""
    try:
        store = SqlStore(store_url)
        recorder = Recorder(store, NullEmitter())
        store.count_runs()  # open the engine and check the schema before the race
        written: list[list[tuple[str | None, str]]] = []
        for round_number in range(SAME_STEP_ROUNDS):
            barrier.wait(BARRIER_TIMEOUT_S)
            records = recorder.step(
                DAG_ID,
                RUN_ID,
                f"same_{round_number}",
                StepState.SUCCEEDED,
                actor=f"worker-{worker}",
                try_number=1,
            )
            written.append([(r.from_state, r.to_state) for r in records])
        results.put((worker, "ok", written))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))
        raise
    finally:
        engine_module.dispose_engines()


# -- helpers -----------------------------------------------------------------------------------


def transition_counts(store: SqlStore) -> dict[str, int]:
    """Totals and duplicate counts straight from the tables, independent of ``get_run``."""
    with store._engine.connect() as connection:

        def count(query: Any) -> int:
            return int(connection.execute(query).scalar_one())

        duplicates = (
            select(
                transition_table.c.step_pk,
                transition_table.c.from_state,
                transition_table.c.to_state,
            )
            .group_by(
                transition_table.c.step_pk,
                transition_table.c.from_state,
                transition_table.c.to_state,
            )
            .having(func.count() > 1)
            .subquery()
        )
        return {
            "runs": count(select(func.count()).select_from(run_table)),
            "steps": count(select(func.count()).select_from(step_table)),
            "transitions": count(select(func.count()).select_from(transition_table)),
            "run_transitions": count(
                select(func.count())
                .select_from(transition_table)
                .where(transition_table.c.step_pk.is_(None))
            ),
            "duplicate_edges": count(select(func.count()).select_from(duplicates)),
        }


# -- tests -------------------------------------------------------------------------------------


def test_many_processes_start_one_run_and_record_their_steps(store_url: str) -> None:
    results = run_workers(_start_and_record_steps, store_url)

    # Exactly one worker created the run; the others found it RUNNING and wrote nothing.
    run_writes = sorted(run_written for run_written, _ in results.values())
    assert run_writes == [0] * (WORKERS - 1) + [3]
    assert all(step_written == STEPS_PER_WORKER * 3 for _, step_written in results.values())

    store = SqlStore(store_url)
    run = store.get_run(DAG_ID, RUN_ID)
    assert run.state == "RUNNING"
    assert [(t.from_state, t.to_state) for t in run.transitions] == [
        (None, "CREATED"),
        ("CREATED", "VALIDATED"),
        ("VALIDATED", "RUNNING"),
    ]
    assert len(run.steps) == WORKERS * STEPS_PER_WORKER
    assert {(s.step_id, s.map_index) for s in run.steps} == {
        (f"task_{w}", i) for w in range(WORKERS) for i in range(STEPS_PER_WORKER)
    }
    expected_step_edges = [(None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    for step in run.steps:
        assert step.state == "SUCCEEDED"
        assert [(t.from_state, t.to_state) for t in step.transitions] == expected_step_edges
        assert {t.actor for t in step.transitions} == {f"worker-{step.step_id[len('task_') :]}"}
    assert sum(len(s.transitions) for s in run.steps) == 600

    assert transition_counts(store) == {
        "runs": 1,
        "steps": 200,
        "transitions": 603,
        "run_transitions": 3,
        "duplicate_edges": 0,
    }


def test_many_processes_report_the_same_step_succeeded_once(store_url: str) -> None:
    store = SqlStore(store_url)
    recorder = Recorder(store, NullEmitter())
    recorder.run_started(DAG_ID, RUN_ID, actor="scheduler", reason="run started")
    for round_number in range(SAME_STEP_ROUNDS):
        recorder.step(
            DAG_ID,
            RUN_ID,
            f"same_{round_number}",
            StepState.RUNNING,
            actor="listener",
            try_number=1,
        )
    before = transition_counts(store)

    results = run_workers(_report_same_step_succeeded, store_url)

    for round_number in range(SAME_STEP_ROUNDS):
        writes = [results[w][round_number] for w in range(WORKERS)]
        winners = [w for w in writes if w]
        assert winners == [[("RUNNING", "SUCCEEDED")]], (round_number, writes)

    run = store.get_run(DAG_ID, RUN_ID)
    assert len(run.steps) == SAME_STEP_ROUNDS
    for step in run.steps:
        assert step.state == "SUCCEEDED"
        assert [(t.from_state, t.to_state) for t in step.transitions] == [
            (None, "PENDING"),
            ("PENDING", "RUNNING"),
            ("RUNNING", "SUCCEEDED"),
        ]
    after = transition_counts(store)
    assert after["transitions"] == before["transitions"] + SAME_STEP_ROUNDS
    assert after["duplicate_edges"] == 0
    assert after["steps"] == SAME_STEP_ROUNDS
