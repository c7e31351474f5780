"""A sick store never stalls a governed run, and nothing it could not take is lost (issue 15).

Each test breaks a real store the way production breaks: a SQLite write lock held by another
process, a store file that cannot be written, a "PostgreSQL" that accepts connections and never
answers, a PostgreSQL database that stops taking connections mid-run. In each the DAG runs through
real Airflow (``dag.test()``) in about its normal time, the transitions wait in the local spool, and
once the store is back one flush writes every transition exactly once, with its original time and
actor, and the audit chain verifies.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import get_recorder, get_runtime_store, reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("fresh_runtime")]

DAG_ID = "wfe_example_success"


def _configure(monkeypatch: pytest.MonkeyPatch, url: str, spool: Path, **extra: str) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", url)
    monkeypatch.setenv("AIRFLOW__WFE__SPOOL_PATH", str(spool))
    monkeypatch.setenv("AIRFLOW__WFE__AUDIT_SIGNING_KEY", "wfe-store-faults-test-key")
    monkeypatch.setenv("AIRFLOW__WFE__STORE_LOCK_TIMEOUT", "1")
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("AIRFLOW__WFE__STORE_STATEMENT_TIMEOUT", "2")
    for name, value in extra.items():
        monkeypatch.setenv(f"AIRFLOW__WFE__{name.upper()}", value)
    reset_runtime()


def _timed_run(dagbag: Any) -> tuple[Any, float]:
    started = time.monotonic()
    dag_run = dagbag.get_dag(DAG_ID).test()
    return dag_run, time.monotonic() - started


def _transitions(dag_id: str, run_id: str) -> list[tuple[str | None, str | None, str]]:
    record = get_runtime_store().get_run(dag_id, run_id)
    found = [(None, t.from_state, t.to_state) for t in record.transitions]
    for step in record.steps:
        key = f"{step.step_id}[{step.map_index}]"
        found += [(key, t.from_state, t.to_state) for t in step.transitions]
    return found


def _assert_recorded_once(dag_run: Any) -> None:
    """The run and every step went their whole way, each transition once, and the chain holds."""
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    assert record.state == "COMPLETED", record.state
    moves = _transitions(dag_run.dag_id, dag_run.run_id)
    assert [m for m, n in Counter(moves).items() if n > 1] == []
    assert [(f, t) for s, f, t in moves if s is None] == [
        (None, "CREATED"),
        ("CREATED", "VALIDATED"),
        ("VALIDATED", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    for step in record.steps:
        assert [t.to_state for t in step.transitions] == ["PENDING", "RUNNING", "SUCCEEDED"]
    report = get_runtime_store().verify_audit(get_runtime_store().audit.signer)
    assert report.ok, report


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagbag: Any) -> Iterator[Path]:
    """A SQLite store with its schema, and a normal run's duration measured on it."""
    path = tmp_path / "wfe.db"
    _configure(monkeypatch, f"sqlite:///{path}", tmp_path / "spool")
    get_runtime_store().count_runs()  # creates the schema
    return path


def _normal_duration(dagbag: Any) -> float:
    """A healthy run's duration on the current store, measured warm (the first run of a process
    pays Airflow's imports)."""
    durations = []
    for _ in range(2):
        dag_run, took = _timed_run(dagbag)
        assert dag_run.state == "success"
        durations.append(took)
    return durations[-1]


def test_a_sqlite_lock_held_by_another_process_costs_one_bound(
    dagbag: Any, sqlite_store: Path, tmp_path: Path
) -> None:
    normal = _normal_duration(dagbag)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(sqlite_store)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        dag_run, took = _timed_run(dagbag)
        assert dag_run.state == "success"
        # One lock bound (1 s) for the first fact; the others join the spool without waiting.
        print(f"sqlite lock: normal run {normal:.1f} s, with the lock held {took:.1f} s")
        assert took < normal + 6, (took, normal)
        spooled = list((tmp_path / "spool").glob("*.jsonl"))
        assert len(spooled) == 1
        assert spooled[0].stat().st_size > 0
        early = get_recorder().flush_spool()
        assert not early.complete  # still locked: nothing written, nothing lost
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    time.sleep(0.1)
    result = get_recorder().flush_spool()
    assert result.complete, result
    assert result.replayed > 0
    assert result.superseded == 0
    assert result.rejected == 0
    _assert_recorded_once(dag_run)
    # A second flush finds nothing, and writes nothing twice.
    again = get_recorder().flush_spool()
    assert (again.replayed, again.remaining) == (0, 0)
    _assert_recorded_once(dag_run)


def test_replayed_transitions_keep_their_original_time_and_actor(
    dagbag: Any, sqlite_store: Path
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(sqlite_store)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stdout.readline().strip() == "locked"
    dag_run, _ = _timed_run(dagbag)
    ended = time.time()
    holder.stdin.close()
    holder.wait(timeout=10)
    time.sleep(1.5)  # the replay happens clearly later than the facts
    assert get_recorder().flush_spool().complete
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    step_moves = [t for s in record.steps for t in s.transitions]
    assert all(t.at.timestamp() <= ended for t in [*record.transitions, *step_moves])
    assert {t.actor for s in record.steps for t in s.transitions} == {"worker"}
    events = list(get_runtime_store().audit_events(dag_id=dag_run.dag_id, run_id=dag_run.run_id))
    transitions = [e for e in events if e.type.endswith("transition")]
    assert transitions
    assert all(datetime.fromisoformat(e.at).timestamp() <= ended for e in transitions)


def test_a_read_only_store_spools_and_a_later_hook_flushes(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite opened read-only (``mode=ro``: root ignores chmod, the driver does not) refuses
    every write at once; the facts wait, and the next run on a writable URL flushes them first."""
    path = tmp_path / "wfe.db"
    writable = f"sqlite:///{path}"
    _configure(monkeypatch, writable, tmp_path / "spool")
    get_runtime_store().count_runs()
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    _configure(monkeypatch, read_only, tmp_path / "spool")
    dag_run, took = _timed_run(dagbag)
    assert dag_run.state == "success"
    assert took < 30
    assert get_recorder().flush_spool().remaining > 0
    status = list((tmp_path / "spool").glob("*.jsonl"))
    assert status
    assert status[0].stat().st_size > 0
    # The same store, writable again (the spool is keyed by URL: flush the read-only one's file
    # into it through a recorder on the writable URL pointed at that file).
    from dataclasses import replace

    from airflow_wfe.engine.recorder import Recorder

    _configure(monkeypatch, writable, tmp_path / "spool")
    recorder = Recorder(
        get_runtime_store(),
        get_recorder().emitter,
        spool=replace(get_recorder().spool, file=status[0]),  # type: ignore[arg-type]
    )
    assert recorder.flush_spool().complete
    _assert_recorded_once(dag_run)


class _SilentServer:
    """A TCP server that accepts every connection and never sends a byte (a hung PostgreSQL)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.postgres
def test_a_postgres_store_that_never_answers_costs_one_bound(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    from sqlalchemy.engine import make_url

    _configure(monkeypatch, pg_url, tmp_path / "spool")
    normal = _normal_duration(dagbag)
    server = _SilentServer()
    try:
        silent = make_url(pg_url).set(host="127.0.0.1", port=server.port)
        silent_url = silent.render_as_string(hide_password=False)
        _configure(monkeypatch, silent_url, tmp_path / "spool")
        dag_run, took = _timed_run(dagbag)
        assert dag_run.state == "success"
        print(f"silent server: normal run {normal:.1f} s, store silent {took:.1f} s")
        assert took < normal + 10, (took, normal)  # 130 s per hook before the bounds
        assert server.accepted  # it really was asked
        spool_file = get_recorder().spool.file  # type: ignore[union-attr]
        assert spool_file.stat().st_size > 0
    finally:
        server.close()
    # The real server again: the spooled facts of the silent one are replayed into it.
    from dataclasses import replace

    from airflow_wfe.engine.recorder import Recorder

    _configure(monkeypatch, pg_url, tmp_path / "spool")
    recorder = Recorder(
        get_runtime_store(),
        get_recorder().emitter,
        spool=replace(get_recorder().spool, file=spool_file),  # type: ignore[arg-type]
    )
    assert recorder.flush_spool().complete
    _assert_recorded_once(dag_run)


@pytest.mark.postgres
def test_postgres_refusing_connections_mid_run_loses_nothing(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    """The store's own database stops taking connections (``ALLOW_CONNECTIONS false`` and its
    sessions terminated) while the run is going, and comes back after it."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(pg_url).database
    admin = os.environ.get(
        "WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ).replace("postgresql+psycopg://", "postgresql://")
    _configure(monkeypatch, pg_url, tmp_path / "spool")
    normal = _normal_duration(dagbag)

    def close_database() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    def open_database() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    get_runtime_store().count_runs()
    close_database()
    try:
        dag_run, took = _timed_run(dagbag)
    finally:
        open_database()
    assert dag_run.state == "success"
    print(f"database closed: normal run {normal:.1f} s, store away {took:.1f} s")
    assert took < normal + 10, (took, normal)
    time.sleep(0.2)
    result = get_recorder().flush_spool()
    assert result.complete, result
    _assert_recorded_once(dag_run)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 4 MiB tmpfs mounted for this test, and a filler file on it: a real filesystem whose every
    write fails with ENOSPC once the filler has taken what is left (needs root and ``mount``; skips
    otherwise, naming why)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk, disk / "filler"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(filler: Path) -> None:
    """Write ``filler`` until the filesystem refuses (ENOSPC): the disk is then full."""
    import errno

    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return


def test_a_full_disk_spools_and_a_later_flush_loses_nothing(
    dagbag: Any, full_disk: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's disk full (a real tmpfs filled to the last block): SQLite answers "database or
    disk is full" to every write; the run finishes, its facts wait in the spool (on another disk),
    and once space is freed one flush writes each transition exactly once and the chain holds."""
    import sqlite3

    disk, filler = full_disk
    path = disk / "wfe.db"
    _configure(monkeypatch, f"sqlite:///{path}", tmp_path / "spool")
    get_runtime_store().count_runs()  # the schema, while there is room
    reset_runtime()  # no connection kept: the next writer opens the full disk afresh
    with sqlite3.connect(path) as connection:  # an empty WAL: the next write must grow it
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _fill(filler)
    dag_run, took = _timed_run(dagbag)
    assert dag_run.state == "success"
    assert took < 60
    assert get_recorder().flush_spool().remaining > 0  # still full: nothing could be written
    filler.unlink()
    assert get_recorder().flush_spool().complete
    _assert_recorded_once(dag_run)
