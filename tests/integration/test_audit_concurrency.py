"""Eight real processes append 1,000 audit events each to one store: one valid chain, none lost.

Each event is its own transaction (the way listeners write), so the chain head is contended 8,000
times; on SQLite ``BEGIN IMMEDIATE`` serialises the writers, on PostgreSQL the head row lock does.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier

import pytest
from sqlalchemy import func, select
from workers import BARRIER_TIMEOUT_S, WORKERS, WorkerResult, run_workers

from airflow_wfe.core.audit.events import AuditEvent
from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.store import SqlStore
from airflow_wfe.store import engine as engine_module
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.tables import audit_checkpoint_table, audit_event_table

pytestmark = pytest.mark.slow

EVENTS_PER_WORKER = 1000
CHECKPOINT_EVERY = 500
KEY = b"concurrency-test-key-0123456789abcdef"


def _store(store_url: str) -> SqlStore:
    return SqlStore(
        store_url, audit=AuditLog(signer=HmacSigner(KEY), checkpoint_every=CHECKPOINT_EVERY)
    )


def _append_events(
    store_url: str, worker: int, barrier: Barrier, results: multiprocessing.Queue[WorkerResult]
) -> None:
    try:
        store = _store(store_url)
        store.count_runs()  # open the engine and check the schema before the race
        barrier.wait(BARRIER_TIMEOUT_S)
        for index in range(EVENTS_PER_WORKER):
            store.record_events(
                f"worker {worker}",
                [
                    AuditEvent(
                        type="manual.action",
                        actor=f"worker-{worker}",
                        at=datetime.now(UTC),
                        dag_id="concurrent",
                        payload={"worker": worker, "index": index},
                    )
                ],
            )
        results.put((worker, "ok", EVENTS_PER_WORKER))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))
        raise
    finally:
        engine_module.dispose_engines()


def test_eight_writers_keep_one_chain_with_every_event(store_url: str) -> None:
    _store(store_url).count_runs()  # create the schema once, so the race is about the chain only
    results = run_workers(_append_events, store_url)
    assert sum(results.values()) == WORKERS * EVENTS_PER_WORKER

    store = _store(store_url)
    total = WORKERS * EVENTS_PER_WORKER
    with store._engine.connect() as connection:
        seqs = connection.execute(select(audit_event_table.c.seq).order_by("seq")).scalars().all()
        checkpoints = connection.execute(
            select(func.count()).select_from(audit_checkpoint_table)
        ).scalar_one()
    assert seqs == list(range(1, total + 1))  # no gap, no fork, no duplicate position
    assert checkpoints == total // CHECKPOINT_EVERY

    seen = Counter(
        (e.content()["payload"]["worker"], e.content()["payload"]["index"])
        for e in store.audit_events()
    )
    assert len(seen) == total  # every event ...
    assert set(seen.values()) == {1}  # ... exactly once

    report = store.verify_audit(HmacSigner(KEY))
    assert report.ok, report.findings[:3]
    assert (report.events, report.last_seq, report.checkpoints) == (total, total, 16)
