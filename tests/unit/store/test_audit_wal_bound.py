"""SQLite's WAL checkpoints, moved off most commits (``SQLITE_WAL_AUTOCHECKPOINT``), stay safe.

A one-event audit append writes ~6 WAL frames; SQLite's default checkpoint every 1,000 frames put
a checkpoint (page copy and ``fsync``) on every ~170th writer's commit. The store now checkpoints
every 10,000 frames and truncates the WAL back to ``SQLITE_JOURNAL_SIZE_LIMIT``. These tests hold
the store to what that must not change: every connection gets the setting, several processes
appending at once past several checkpoints lose nothing and leave a verifiable trail, a reader
checking the trail meanwhile always sees a whole one, and the WAL file stays bounded.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import (
    SQLITE_JOURNAL_SIZE_LIMIT,
    SQLITE_WAL_AUTOCHECKPOINT,
    get_engine,
)
from airflow_wfe.store.tables import audit_event_table

KEY = b"wal-bound-test-hmac-key-0123456789abcdef"
#: Writer processes, and one-event transactions each: together ~14,000 WAL frames, past the
#: checkpoint mark more than once.
WRITERS, EACH = 3, 800

_WRITER = """
import sys
from datetime import UTC, datetime
from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog

url, dag_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlStore(url, audit=AuditLog(signer=HmacSigner(sys.argv[4].encode())))
for index in range(count):
    store.record_events("writer", [AuditEvent(
        type=EventType.MANUAL_ACTION, actor="writer", at=datetime.now(UTC), dag_id=dag_id,
        run_id="run-1", step_id=f"s{index % 7}", payload={"index": index, "reason": "x" * 200},
    )])
"""


def _store(url: str) -> SqlStore:
    return SqlStore(url, audit=AuditLog(signer=HmacSigner(KEY)))


def test_every_store_connection_checkpoints_late_and_bounds_its_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    _store(url).record_events(
        "t", [AuditEvent(type=EventType.MANUAL_ACTION, actor="t", at=datetime.now(UTC))]
    )
    with get_engine(url).connect() as connection:
        driver = connection.connection.dbapi_connection
        assert driver is not None
        assert driver.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert driver.execute("PRAGMA wal_autocheckpoint").fetchone() == (
            SQLITE_WAL_AUTOCHECKPOINT,
        )
        assert driver.execute("PRAGMA journal_size_limit").fetchone() == (
            SQLITE_JOURNAL_SIZE_LIMIT,
        )


def test_writers_in_several_processes_past_checkpoints_leave_a_whole_trail_and_a_bounded_wal(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    store = _store(url)
    signer = HmacSigner(KEY)
    store.record_events(
        "t", [AuditEvent(type=EventType.MANUAL_ACTION, actor="t", at=datetime.now(UTC))]
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, f"dag_{number}", str(EACH), KEY.decode()],
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(WRITERS)
    ]
    # A reader verifies the trail while the writers append and checkpoint: each read snapshot is a
    # whole trail (a checkpoint never shows a reader half of a transaction).
    checks = 0
    while any(w.poll() is None for w in writers) or checks == 0:
        report = store.verify_audit(signer)
        assert report.ok, report.findings
        checks += 1
    for writer in writers:
        _, errors = writer.communicate(timeout=300)
        assert writer.returncode == 0, errors
    report = store.verify_audit(signer)
    assert report.ok, report.findings
    with get_engine(url).connect() as connection:
        events = connection.execute(select(func.count()).select_from(audit_event_table)).scalar()
    assert events == 1 + WRITERS * EACH
    assert report.events == events
    # Bounded. The reader above kept a snapshot open nearly all the time, which holds back the
    # WAL's restart under any checkpoint setting (SQLite's checkpoint starvation: the file then
    # holds all ~14,000 frames, ~57 MB); the next writers once no reader is in the way checkpoint
    # it fully, restart it and truncate the file to the limit.
    for _ in range(2):
        store.record_events(
            "t", [AuditEvent(type=EventType.MANUAL_ACTION, actor="t", at=datetime.now(UTC))]
        )
    assert (tmp_path / "store.db-wal").stat().st_size <= SQLITE_JOURNAL_SIZE_LIMIT
