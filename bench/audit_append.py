"""Audit trail throughput: appends on SQLite (one writer) and PostgreSQL (8 writers), verification.

Appends go through the store's public path (``SqlStore.record_events``: one transaction per event,
head locked, HMAC-signed head), which is the worst case: a state change writes its events in the
transaction it needs anyway. Verification streams the whole chain with ``wfe audit verify``'s code and
reports its traced peak memory at two chain lengths, to show it does not grow with the chain.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
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


#: As ``[wfe] audit_partitions`` defaults to.
PARTITIONS = 16


def _cpu_timed(function: Any) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (user + system) one call of ``function``
    takes: the machine is shared, so CPU per event is the steadier figure."""
    cpu, start = time.process_time(), time.perf_counter()
    function()
    return time.perf_counter() - start, time.process_time() - cpu


#: CPU microseconds per event of each measured run, by figure (filled as the runs go).
CPU_US: dict[str, list[float]] = {}


def _cpu(label: str, seconds: float, events: int) -> None:
    CPU_US.setdefault(label, []).append(seconds * 1e6 / events)


def _store(url: str, partitions: int = PARTITIONS) -> Any:
    from airflow_wfe.core.audit.signing import HmacSigner
    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.audit_writer import AuditLog

    return SqlStore(url, audit=AuditLog(signer=HmacSigner(KEY), partitions=partitions))


def _event(i: int, dag_id: str = "bench_dag") -> Any:
    from airflow_wfe.core.audit.events import AuditEvent, EventType

    # A manual action with a transition's payload: the same bytes to seal and hash, but no state
    # rows to replay against (verification's replay would name every event as a projection
    # mismatch; its cost is that of parsing each transition body, not measured here).
    return AuditEvent(
        type=EventType.MANUAL_ACTION,
        actor="worker",
        at=datetime.now(UTC),
        dag_id=dag_id,
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
        elapsed, cpu = _cpu_timed(lambda: [store.record_events("bench", [e]) for e in batch])  # noqa: B023
        rates.append(events / elapsed)
        _cpu("sqlite", cpu, events)
    return rates


def raw_sqlite(events: int) -> list[float]:
    """The anchor, measured in the same run: plain ``sqlite3`` doing the append's three statements
    (head read, event insert, head move) in one ``BEGIN IMMEDIATE`` transaction per event on the
    store's own schema and settings, with the same body hashed, and nothing else."""
    import hashlib
    import sqlite3

    from airflow_wfe.store.audit_sql import DriverSql
    from airflow_wfe.store.engine import SQLITE_PRAGMAS

    home = os.environ["AIRFLOW_HOME"]
    sql = DriverSql.build("qmark", "sqlite")
    rates = []
    for number in range(runs()):
        path = f"{home}/raw-{number}.db"
        _store(f"sqlite:///{path}").record_events("bench", [_event(0)])  # the schema, migrated
        sealed = _store(f"sqlite:///{home}/raw-bodies.db").record_events("bench", [_event(1)])[0]
        connection = sqlite3.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            connection.execute(f"PRAGMA {pragma}")
        body = sealed.body

        def append(connection: Any = connection, sealed: Any = sealed, body: str = body) -> None:
            for _ in range(events):
                connection.execute("BEGIN IMMEDIATE")
                cursor = connection.cursor()
                cursor.execute(sql.lock_head, ("main",))
                seq, prev = cursor.fetchone()
                digest = hashlib.sha256(body.encode()).hexdigest()
                cursor.execute(
                    sql.insert_event,
                    ("main", seq + 1, sealed.at, sealed.type, sealed.actor, sealed.dag_id,
                     sealed.run_id, sealed.step_id, body, prev, digest),
                )  # fmt: skip
                cursor.execute(
                    sql.move_head, (seq + 1, digest, sealed.at, digest, "hmac", "k", "main", seq)
                )
                connection.execute("COMMIT")

        elapsed, cpu = _cpu_timed(append)
        rates.append(events / elapsed)
        _cpu("sqlite raw", cpu, events)
        connection.close()
    return rates


def _pg_writer(
    url: str, count: int, barrier: Any, out: Any, dag_id: str, partitions: int
) -> None:  # args as _race passes them
    store = _store(url, partitions)
    store.record_events("bench", [_event(0, dag_id)])
    batch = [_event(i, dag_id) for i in range(count)]
    barrier.wait()
    cpu, start = time.process_time(), time.perf_counter()
    for event in batch:
        store.record_events("bench", [event])
    out.put((start, time.perf_counter(), time.process_time() - cpu))


def _writer_dags(writers: int) -> list[str]:
    """One DAG per writer, as a deployment's concurrent tasks mostly belong to different DAGs
    (their partitions: see :func:`spread`)."""
    return [f"etl_{number:02d}" for number in range(writers)]


def spread(writers: int) -> int:
    """How many partitions the writers' DAGs fall into (fewer than writers: some share one)."""
    from airflow_wfe.core.audit.partitions import partition_of

    return len({partition_of(d, PARTITIONS) for d in _writer_dags(writers)})


def _raw_pg_writer(url: str, count: int, barrier: Any, out: Any) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        body = "x" * 400
        barrier.wait()
        cpu, start = time.process_time(), time.perf_counter()
        for number in range(count):
            connection.execute("INSERT INTO bench_raw VALUES (%s, %s)", (number, body))
            connection.commit()
        out.put((start, time.perf_counter(), time.process_time() - cpu))


def _race(
    target: Any, args: tuple[Any, ...], writers: int, extra: list[tuple[Any, ...]], label: str
) -> float:
    """Aggregate rate of ``writers`` spawned processes running ``target`` at once (their client
    CPU per event recorded under ``label``)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(writers)
    out = context.Queue()
    processes = [
        context.Process(target=target, args=(*args, barrier, out, *more)) for more in extra
    ]
    for process in processes:
        process.start()
    spans = [out.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    _cpu(label, sum(c for _, _, c in spans), writers * args[1])
    return writers * args[1] / (max(e for _, e, _ in spans) - min(s for s, _, _ in spans))


def pg_writers(writers: int, each: int) -> dict[str, list[float]] | str:
    """Aggregate events per second of ``writers`` processes, one DAG each, with the default
    partitions and with one chain, and the anchor measured in the same runs: the same processes
    doing a plain ``INSERT`` + ``COMMIT`` each (what this machine's commits allow); or why it
    could not run."""
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
    raw_url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    rates: dict[str, list[float]] = {"partitioned": [], "one chain": [], "raw": []}
    dags = _writer_dags(writers)
    try:
        _store(url).record_events("bench", [_event(0)])  # migrate once, before the writers
        with psycopg.connect(raw_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE bench_raw (n integer, body text)")
        for _ in range(runs()):
            for label, partitions in (("partitioned", PARTITIONS), ("one chain", 1)):
                extra = [(dag_id, partitions) for dag_id in dags]
                rates[label].append(_race(_pg_writer, (url, each), writers, extra, f"pg {label}"))
            rates["raw"].append(
                _race(_raw_pg_writer, (raw_url, each), writers, [()] * writers, "pg raw")
            )
    finally:
        from airflow_wfe.store.engine import dispose_engines

        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return rates


#: DAGs of the verification trail: a deployment's many DAGs, spread over the partitions.
VERIFY_DAGS = 64


def _populate(store: Any, events: int) -> None:
    batch = 1000
    for start in range(0, events, batch):
        chunk = [
            _event(i, f"dag_{i % VERIFY_DAGS:02d}")
            for i in range(start, min(events, start + batch))
        ]
        store.record_events("bench", chunk)


def verification(events: int) -> tuple[list[float], int, int, float]:
    """Events per second verified, the traced peak memory (bytes) at events/10 and events, and
    how many bodies per second one process hashes (the anchor)."""
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
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed, cpu = _cpu_timed(lambda: large.verify_audit(signer))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        rates.append(events / elapsed)
        _cpu("verify", cpu + workers, events)
    peaks = []
    for store in (small, large):
        tracemalloc.start()
        store.verify_audit(signer)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    import hashlib

    bodies = [e.body.encode() for e in large.audit_events()]
    hashing = len(bodies) / timed(lambda: [hashlib.sha256(b).hexdigest() for b in bodies])
    return rates, peaks[0], peaks[1], hashing


def _us(label: str) -> str:
    """The median CPU microseconds per event recorded under ``label``."""
    return f"{_median(CPU_US[label]):.1f} µs" if CPU_US.get(label) else "n/a"


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def main() -> None:
    scratch_home("wfe-bench-audit-")
    events = 300 if quick() else 5000
    ours, raw = sqlite_single_writer(events), raw_sqlite(events)
    results = [
        summarise(
            AREA,
            "append, SQLite, 1 writer (1 event per transaction, signed head)",
            "events/s",
            ours,
            goal="≥ 20,000",
            check=lambda v: v >= 20_000,
            note=f"{events} events per run; anchor in the same runs: raw sqlite3 doing the "
            f"append's 3 statements on the store's schema {_median(raw):,.0f}/s (ours "
            f"{_median(ours) / _median(raw):.0%} of it); CPU per event {_us('sqlite')} "
            f"(anchor {_us('sqlite raw')})",
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
                pg["partitioned"],
                goal="≥ 5,000",
                check=lambda v: v >= 5_000,
                note=f"{writers} processes × {each} events per run, one DAG each "
                f"({spread(writers)} of {PARTITIONS} partitions); same runs: one chain "
                f"{_median(pg['one chain']):,.0f}/s; anchor: plain INSERT + COMMIT by the same "
                f"number of processes {_median(pg['raw']):,.0f}/s (this machine's commit rate; "
                f"ours {_median(pg['partitioned']) / _median(pg['raw']):.0%} of it); writers' "
                f"client CPU per event {_us('pg partitioned')} (anchor {_us('pg raw')}; "
                "PostgreSQL's own CPU not included)",
            )
        )
    total = 2000 if quick() else 100_000
    rates, small_peak, large_peak, hashing = verification(total)
    results.append(
        summarise(
            AREA,
            f"verify, streamed from SQLite ({total:,} events of {VERIFY_DAGS} DAGs in "
            f"{PARTITIONS} partitions, signatures checked)",
            "events/s",
            rates,
            goal="≥ 500,000",
            check=lambda v: v >= 500_000,
            note=f"partitions in parallel worker processes; traced peak memory (parent) "
            f"{small_peak / 1024:.0f} KiB at {total // 10:,} events, {large_peak / 1024:.0f} KiB "
            f"at {total:,}; anchor in the same run: SHA-256 of the same bodies in one process "
            f"{hashing:,.0f}/s; CPU per event (parent + workers) {_us('verify')}",
        )
    )
    emit(results)


if __name__ == "__main__":
    main()
