"""Attacks by someone with write access to the store (not to the key), on SQLite and PostgreSQL.

Each test tampers the way issue #14 found verification blind to, straight in the database, and
checks that verification now fails closed and names the problem, and that the writer neither wedges
silently nor blesses the tampering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from airflow_wfe.core.audit.events import seal
from airflow_wfe.core.audit.signing import GeneratedKey, HmacSigner, Keyring, head_message
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import AuditError, ConfigError, StoreUnavailableError
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
)

History = Callable[..., None]


def _kinds(store: SqlStore, keys: Any) -> list[tuple[int | None, str]]:
    report = store.verify_audit(keys)
    assert not report.ok, "tampering went unnoticed"
    return [(f.seq, f.kind) for f in report.findings]


def _head_row(store: SqlStore) -> Any:
    with store._engine.connect() as connection:
        return connection.execute(select(audit_head_table)).one()


def test_deleted_head_with_a_cut_tail_is_broken_and_the_writer_refuses_loudly(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)  # 26 events
    with signed_store._engine.begin() as connection:
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq > 20))
        connection.execute(delete(audit_checkpoint_table))
        connection.execute(delete(audit_head_table))
    assert (None, "head missing") in _kinds(signed_store, signer)
    recorder = Recorder(signed_store, NullEmitter())
    # Not an IntegrityError retried into a ConcurrentUpdateError: a clear refusal naming the row.
    with pytest.raises(AuditError, match=r"chain head row .* is missing .* events up to #20"):
        recorder.run_started("etl", "after", actor="scheduler", reason="go")
    assert _kinds(signed_store, signer)[0] == (None, "head missing")


def test_a_whole_chain_rewritten_without_head_and_checkpoints_is_broken(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store, runs=1)
    with signed_store._engine.begin() as connection:
        rows = connection.execute(select(audit_event_table).order_by(audit_event_table.c.seq)).all()
        connection.execute(delete(audit_event_table))
        connection.execute(delete(audit_checkpoint_table))
        connection.execute(delete(audit_head_table))
        # The attacker's own history, every hash recomputed: a perfectly linked chain.
        prev = "0" * 64
        for row in rows[:5]:
            content = seal_from_row(row)
            sealed = seal(content, int(row.seq), prev)
            connection.execute(
                insert(audit_event_table).values(
                    seq=sealed.seq,
                    at=sealed.at,
                    type=sealed.type,
                    actor=sealed.actor,
                    dag_id=sealed.dag_id,
                    run_id=sealed.run_id,
                    step_id=sealed.step_id,
                    body=sealed.body,
                    prev_hash=sealed.prev_hash,
                    hash=sealed.hash,
                )
            )
            prev = sealed.hash
    kinds = _kinds(signed_store, signer)
    assert (None, "head missing") in kinds


def seal_from_row(row: Any) -> Any:
    from datetime import datetime

    from airflow_wfe.core.audit.events import AuditEvent

    return AuditEvent(
        type=row.type,
        actor="user:mallory",
        at=datetime.fromisoformat(row.at.replace("Z", "+00:00")),
        dag_id=row.dag_id,
        run_id=row.run_id,
        step_id=row.step_id,
    )


def _forge_archive(store: SqlStore, up_to: int, **signed: Any) -> None:
    with store._engine.begin() as connection:
        last_hash = connection.execute(
            select(audit_event_table.c.hash).where(audit_event_table.c.seq == up_to)
        ).scalar_one()
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq <= up_to))
        connection.execute(
            insert(audit_archive_table).values(
                first_seq=1,
                last_seq=up_to,
                last_hash=last_hash,
                at="2026-01-01T00:00:00.000000Z",
                path="/nowhere.jsonl",
                sha256="0" * 64,
                **signed,
            )
        )


def test_an_unsigned_archive_row_does_not_stand_for_deleted_events(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    _forge_archive(signed_store, 12)
    kinds = _kinds(signed_store, signer)
    assert (12, "unsigned") in kinds
    assert (1, "deleted") in kinds


def test_a_head_signature_copied_into_an_archive_row_does_not_verify(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    # A genuine head signature over (#12, its hash, its time): the attacker saved it when the
    # head stood at #12 (here: signed with the key, as the writer did then).
    with signed_store._engine.connect() as connection:
        row = connection.execute(
            select(audit_event_table).where(audit_event_table.c.seq == 12)
        ).one()
    stolen = signer.sign(head_message(12, row.hash, row.at))
    _forge_archive(
        signed_store, 12, algorithm=signer.algorithm, key_id=signer.key_id, signature=stolen
    )
    with signed_store._engine.begin() as connection:
        connection.execute(update(audit_archive_table).values(at=row.at))
    kinds = _kinds(signed_store, signer)
    assert (12, "bad signature") in kinds
    assert (1, "deleted") in kinds


def test_a_checkpoint_copied_into_the_head_after_a_cut_does_not_verify(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)  # 26 events, checkpoints at 5, 10, 15, 20, 25
    with signed_store._engine.begin() as connection:
        checkpoint = connection.execute(
            select(audit_checkpoint_table).where(audit_checkpoint_table.c.seq == 15)
        ).one()
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq > 15))
        connection.execute(delete(audit_checkpoint_table).where(audit_checkpoint_table.c.seq > 15))
        connection.execute(
            update(audit_head_table).values(
                seq=15,
                hash=checkpoint.hash,
                at=checkpoint.at,
                algorithm=checkpoint.algorithm,
                key_id=checkpoint.key_id,
                signature=checkpoint.signature,
            )
        )
    kinds = _kinds(signed_store, signer)
    assert kinds[0] == (None, "bad signature")
    assert {kind for _seq, kind in kinds} == {"bad signature", "projection"}


def test_a_forged_checkpoint_row_is_refused(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    head = _head_row(signed_store)
    with signed_store._engine.begin() as connection:
        # The head's signature as a checkpoint at the head's position: a different domain.
        connection.execute(
            insert(audit_checkpoint_table).values(
                seq=head.seq,
                hash=head.hash,
                at=head.at,
                algorithm=head.algorithm,
                key_id=head.key_id,
                signature=head.signature,
                reason="manual",
            )
        )
    assert (head.seq, "bad signature") in _kinds(signed_store, signer)


def test_without_a_key_the_trail_is_not_verified_and_hashes_only_says_so(
    signed_store: SqlStore, write_history: History
) -> None:
    write_history(signed_store, runs=1)
    report = signed_store.verify_audit(Keyring())
    assert not report.ok
    assert report.status == "NOT VERIFIED"
    assert [f.kind for f in report.findings] == ["no key"]
    hashes = signed_store.verify_audit(None, signatures=False)
    assert hashes.ok
    assert not hashes.signatures_checked
    assert any("--no-signatures" in note for note in hashes.notes)
    foreign = signed_store.verify_audit(HmacSigner(b"another-key-0123456789abcdef"))
    assert foreign.status == "NOT VERIFIED"
    assert {f.kind for f in foreign.findings} == {"unknown key"}


def test_rotation_old_key_kept_for_verification(url: str, write_history: History) -> None:
    old, new = HmacSigner(b"old-key-0123456789abcdef"), HmacSigner(b"new-key-0123456789abcdef")
    write_history(SqlStore(url, audit=AuditLog(signer=old, checkpoint_every=5)), runs=1)
    rotated = Recorder(SqlStore(url, audit=AuditLog(signer=new, checkpoint_every=5)), NullEmitter())
    for index in range(3):
        rotated.run_started("etl", f"later-{index}", actor="scheduler", reason="go")
    store = SqlStore(url)
    # Checkpoints signed with the old key: only the current one given is "unknown key" ...
    assert {f.kind for f in store.verify_audit(new).findings} == {"unknown key"}
    # ... both keys verify everything.
    assert store.verify_audit(Keyring([old, new])).ok


def test_a_generated_key_is_never_minted_for_a_trail_that_has_events(
    tmp_path: Path, write_history: History
) -> None:
    url = f"sqlite:///{tmp_path}/wfe.db"
    key_file = tmp_path / "home" / "wfe_audit.key"
    write_history(SqlStore(url, audit=AuditLog(signer=GeneratedKey(key_file))), runs=1)
    assert key_file.exists()  # the first append to an empty trail created it
    key_id = HmacSigner(key_file.read_bytes().strip()).key_id
    key_file.unlink()  # the attacker deletes the key, hoping the next writer mints a new one
    recorder = Recorder(SqlStore(url, audit=AuditLog(signer=GeneratedKey(key_file))), NullEmitter())
    with pytest.raises(AuditError, match=rf"key is missing.*signed with key {key_id}"):
        recorder.run_started("etl", "after", actor="scheduler", reason="go")
    assert not key_file.exists()


@pytest.mark.postgres
def test_a_server_store_refuses_the_generated_key(pg_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "wfe_audit.key"
    recorder = Recorder(
        SqlStore(pg_url, audit=AuditLog(signer=GeneratedKey(key_file))), NullEmitter()
    )
    with pytest.raises(ConfigError, match=r"postgresql store.*wfe audit keygen"):
        recorder.run_started("etl", "r", actor="scheduler", reason="go")
    assert not key_file.exists()


def test_verify_creates_nothing_for_a_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(StoreUnavailableError, match="no such file"):
        SqlStore(f"sqlite:///{missing}").verify_audit(HmacSigner(b"k" * 32))
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreUnavailableError, match="no airflow-wfe audit trail"):
        SqlStore(f"sqlite:///{empty}").verify_audit(HmacSigner(b"k" * 32))
    assert empty.stat().st_size == 0


@pytest.mark.postgres
def test_verify_creates_no_tables_in_an_empty_server_database(pg_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    with pytest.raises(StoreUnavailableError, match="no airflow-wfe audit trail"):
        SqlStore(pg_url).verify_audit(HmacSigner(b"k" * 32))
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        assert not [t for t in inspect(connection).get_table_names() if t.startswith("wfe_")]
    engine.dispose()


def test_a_read_only_copy_verifies_in_place(
    tmp_path: Path, signer: HmacSigner, write_history: History
) -> None:
    source = tmp_path / "live" / "wfe.db"
    source.parent.mkdir()
    store = SqlStore(f"sqlite:///{source}", audit=AuditLog(signer=signer, checkpoint_every=5))
    write_history(store)
    from airflow_wfe.store.engine import dispose_engines

    dispose_engines()  # checkpoint the WAL into the file, as a backup tool would copy it
    copy_dir = tmp_path / "worm"
    copy_dir.mkdir()
    copy = copy_dir / "wfe.db"
    copy.write_bytes(source.read_bytes())
    for extra in ("-wal", "-shm"):
        wal = source.with_name(source.name + extra)
        if wal.exists():
            (copy_dir / (copy.name + extra)).write_bytes(wal.read_bytes())
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    listing = sorted(p.name for p in copy_dir.iterdir())
    copy.chmod(0o444)
    copy_dir.chmod(0o555)
    try:
        report = SqlStore(f"sqlite:///{copy}").verify_audit(signer)
    finally:
        copy_dir.chmod(0o755)
    assert report.ok, report.findings
    assert report.events == 26
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in copy_dir.iterdir()) == listing


def test_the_writer_still_writes_after_an_honest_empty_head(url: str, signer: HmacSigner) -> None:
    """A store whose head row went missing before any event (nothing to protect) starts a chain."""
    store = SqlStore(url, audit=AuditLog(signer=signer))
    with store._engine.begin() as connection:
        connection.execute(delete(audit_head_table))
    recorder = Recorder(store, NullEmitter())
    recorder.run_started("etl", "r", actor="scheduler", reason="go")
    recorder.step("etl", "r", "s", StepState.RUNNING, actor="worker")
    assert store.verify_audit(signer).ok


def test_an_edited_state_table_disagrees_with_the_replayed_trail(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    from airflow_wfe.store.tables import run_table, step_table

    write_history(signed_store)
    assert signed_store.verify_audit(signer).ok
    with signed_store._engine.begin() as connection:
        connection.execute(
            update(run_table).where(run_table.c.run_id == "run-1").values(state="FAILED")
        )
    report = signed_store.verify_audit(signer)
    assert [(f.kind) for f in report.findings] == ["projection"]
    assert "wfe_run etl/run-1" in report.findings[0].message
    assert "'FAILED'" in report.findings[0].message
    assert "'COMPLETED'" in report.findings[0].message
    with signed_store._engine.begin() as connection:
        connection.execute(
            update(run_table).where(run_table.c.run_id == "run-1").values(state="COMPLETED")
        )
        connection.execute(
            update(step_table).where(step_table.c.step_id == "step2").values(state="FAILED")
        )
    report = signed_store.verify_audit(signer)
    assert "wfe_step etl/run-0/step2[-1]" in report.findings[0].message
