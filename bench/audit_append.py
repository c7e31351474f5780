"""Audit trail throughput: appends on SQLite (one writer) and PostgreSQL (8 writers), verification.

Appends go through the store's public path (``SqlStore.record_events``: one transaction per event,
head locked, HMAC-signed head), which is the worst case: a state change writes its events in the
transaction it needs anyway. Verification streams the whole chain with ``wfe audit verify``'s code and
reports its traced peak memory at two chain lengths, to show it does not grow with the chain.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.common import emit, quick, runs, scratch_home, skip, summarise, timed

AREA = "audit"
KEY = b"bench-only-hmac-key-0123456789abcdef"
PG_URL = os.environ.get(
    "WFE_BENCH_PG_URL",
    os.environ.get("WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)


def _store(url: str) -> Any:
    from airflow_wfe.core.audit.signing import HmacSigner
    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.audit_writer import AuditLog

    return SqlStore(url, audit=AuditLog(signer=HmacSigner(KEY)))


def _event(i: int) -> Any:
    from airflow_wfe.core.audit.events import AuditEvent, EventType

    # A manual action with a transition's payload: the same bytes to seal and hash, but no state
    # rows to replay against (verification's replay would name every event as a projection
    # mismatch; its cost is that of parsing each transition body, not measured here).
    return AuditEvent(
        type=EventType.MANUAL_ACTION,
        actor="worker",
        at=datetime.now(UTC),
        dag_id="bench_dag",
        run_id="manual__2026-11-25T08:54:14+00:00",
        step_id=f"t{i % 100:03d}",
        map_index=-1,
        payload={
            "from_state": "RUNNING",
            "to_state": "SUCCEEDED",
            "reason": "task succeeded",
            "map_index": -1,
            "try_number": 1,
        },
        versions={"dag_version_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
    )


def sqlite_single_writer(events: int) -> list[float]:
    """Events per second, one transaction per event, one writer."""
    home = os.environ["AIRFLOW_HOME"]
    rates = []
    for number in range(runs()):
        store = _store(f"sqlite:///{home}/append-{number}.db")
        store.record_events("bench", [_event(0)])  # schema, connection: not part of the figure
        batch = [_event(i) for i in range(events)]
        elapsed = timed(lambda: [store.record_events("bench", [e]) for e in batch])  # noqa: B023
        rates.append(events / elapsed)
    return rates


def _pg_writer(url: str, count: int, barrier: Any, out: Any) -> None:
    store = _store(url)
    store.record_events("bench", [_event(0)])
    batch = [_event(i) for i in range(count)]
    barrier.wait()
    start = time.perf_counter()
    for event in batch:
        store.record_events("bench", [event])
    out.put((start, time.perf_counter()))


def pg_writers(writers: int, each: int) -> list[float] | str:
    """Aggregate events per second of ``writers`` processes, or why it could not run."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"wfe_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - no server: the row says so
        return f"PostgreSQL at {PG_URL} unreachable: {str(exc).splitlines()[0]}"
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    rates = []
    try:
        _store(url).record_events("bench", [_event(0)])  # migrate once, before the writers
        context = multiprocessing.get_context("spawn")
        for _ in range(runs()):
            barrier = context.Barrier(writers)
            out = context.Queue()
            processes = [
                context.Process(target=_pg_writer, args=(url, each, barrier, out))
                for _ in range(writers)
            ]
            for process in processes:
                process.start()
            spans = [out.get(timeout=600) for _ in processes]
            for process in processes:
                process.join()
            first = min(s for s, _ in spans)
            last = max(e for _, e in spans)
            rates.append(writers * each / (last - first))
    finally:
        from airflow_wfe.store.engine import dispose_engines

        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return rates


def _populate(store: Any, events: int) -> None:
    batch = 1000
    for start in range(0, events, batch):
        chunk = [_event(i) for i in range(start, min(events, start + batch))]
        store.record_events("bench", chunk)


def verification(events: int) -> tuple[list[float], int, int]:
    """Events per second verified, and the traced peak memory (bytes) at events/10 and events."""
    from airflow_wfe.core.audit.signing import HmacSigner

    home = os.environ["AIRFLOW_HOME"]
    signer = HmacSigner(KEY)
    small, large = (
        _store(f"sqlite:///{home}/verify-small.db"),
        _store(f"sqlite:///{home}/verify.db"),
    )
    _populate(small, events // 10)
    _populate(large, events)
    assert large.verify_audit(signer).ok
    rates = []
    for _ in range(runs()):
        elapsed = timed(lambda: large.verify_audit(signer))
        rates.append(events / elapsed)
    peaks = []
    for store in (small, large):
        tracemalloc.start()
        store.verify_audit(signer)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return rates, peaks[0], peaks[1]


def main() -> None:
    scratch_home("wfe-bench-audit-")
    events = 300 if quick() else 5000
    results = [
        summarise(
            AREA,
            "append, SQLite, 1 writer (1 event per transaction, signed head)",
            "events/s",
            sqlite_single_writer(events),
            goal="≥ 10,000",
            check=lambda v: v >= 10_000,
            note=f"{events} events per run; anchors: raw sqlite3 WAL ~31,000/s, "
            "one SQLAlchemy Core insert per row ~2,450/s",
        )
    ]
    writers, each = (2, 50) if quick() else (8, 1000)
    pg = pg_writers(writers, each)
    metric = f"append, PostgreSQL, {writers} writers (1 event per transaction), aggregate"
    if isinstance(pg, str):
        results.append(skip(AREA, metric, pg, goal="≥ 5,000"))
    else:
        results.append(
            summarise(
                AREA,
                metric,
                "events/s",
                pg,
                goal="≥ 5,000",
                check=lambda v: v >= 5_000,
                note=f"{writers} processes × {each} events per run",
            )
        )
    total = 2000 if quick() else 100_000
    rates, small_peak, large_peak = verification(total)
    results.append(
        summarise(
            AREA,
            f"verify, streamed from SQLite ({total:,} events, signatures checked)",
            "events/s",
            rates,
            goal="≥ 250,000",
            check=lambda v: v >= 250_000,
            note=f"traced peak memory {small_peak / 1024:.0f} KiB at {total // 10:,} events, "
            f"{large_peak / 1024:.0f} KiB at {total:,}; anchor: ~284,000/s with hashlib",
        )
    )
    emit(results)


if __name__ == "__main__":
    main()
