"""External anchors against a store rolled back, truncated or erased (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from airflow_wfe.core.audit.signing import HmacSigner, Keyring
from airflow_wfe.store import SqlStore
from airflow_wfe.store.tables import audit_checkpoint_table, audit_event_table, audit_head_table

History = Callable[..., None]


def _findings(store: SqlStore, folder: Path, signer: HmacSigner) -> list[tuple[int | None, str]]:
    report = store.verify_audit_anchors(folder, Keyring([signer]))
    return [(f.seq, f.kind) for f in report.findings]


def test_anchors_verify_an_honest_store_even_without_new_events(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    folder = tmp_path / "anchors"
    assert signed_store.audit_anchor(signer, folder)[1] == 0  # an empty trail is anchored too
    write_history(signed_store, runs=1)
    first, seq = signed_store.audit_anchor(signer, folder)
    second, again = signed_store.audit_anchor(signer, folder)  # nothing happened in between
    assert seq == again == 13
    assert first != second
    assert _findings(signed_store, folder, signer) == []


def test_truncation_back_to_a_signed_state_is_named_by_the_last_anchor(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    folder = tmp_path / "anchors"
    write_history(signed_store)  # 26 events, checkpoints every 5
    signed_store.audit_anchor(signer, folder)
    # Cut back to checkpoint #20 *and* put back the genuine head signed when it stood there:
    # here re-signed with the key, as the writer did then. The store alone verifies OK.
    with signed_store._engine.begin() as connection:
        row = connection.execute(
            select(audit_event_table).where(audit_event_table.c.seq == 20)
        ).one()
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq > 20))
        connection.execute(delete(audit_checkpoint_table).where(audit_checkpoint_table.c.seq > 20))
        from airflow_wfe.core.audit.signing import head_message

        connection.execute(
            update(audit_head_table).values(
                seq=20,
                hash=row.hash,
                at=row.at,
                signature=signer.sign(head_message(20, row.hash, row.at)),
            )
        )
    # The chain alone cannot tell (only the replay notices the state tables are ahead of it).
    assert {f.kind for f in signed_store.verify_audit(signer).findings} == {"projection"}
    findings = _findings(signed_store, folder, signer)
    assert findings[0] == (26, "truncated")


def test_a_rolled_back_and_rewritten_store_differs_from_its_anchor(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    folder = tmp_path / "anchors"
    write_history(signed_store, runs=1)
    signed_store.audit_anchor(signer, folder)
    with signed_store._engine.begin() as connection:
        connection.execute(
            update(audit_event_table).where(audit_event_table.c.seq == 13).values(hash="f" * 64)
        )
    assert (13, "rolled back") in _findings(signed_store, folder, signer)


def test_an_erased_store_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    folder = tmp_path / "anchors"
    write_history(signed_store, runs=1)
    signed_store.audit_anchor(signer, folder)
    with signed_store._engine.begin() as connection:
        connection.execute(delete(audit_event_table))
        connection.execute(delete(audit_checkpoint_table))
    assert _findings(signed_store, folder, signer)[0] == (13, "erased")


def test_a_forged_or_removed_anchor_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    folder = tmp_path / "anchors"
    write_history(signed_store, runs=1)
    first, _ = signed_store.audit_anchor(signer, folder)
    signed_store.audit_anchor(signer, folder)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / first.name).unlink()
    assert (13, "anchor missing") in _findings(signed_store, copy, signer)
    forged = folder / first.name
    forged.write_text(forged.read_text().replace('"seq":13', '"seq":12'))
    assert (12, "bad signature") in _findings(signed_store, folder, signer)


def test_anchor_refuses_a_head_that_does_not_verify(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    from airflow_wfe.exceptions import AuditError

    write_history(signed_store, runs=1)
    with signed_store._engine.begin() as connection:
        connection.execute(update(audit_head_table).values(signature="0" * 64))
    with pytest.raises(AuditError, match="will not anchor"):
        signed_store.audit_anchor(signer, tmp_path / "anchors")


def test_periodic_checkpoints_anchor_the_previous_committed_checkpoint(
    url: str, signer: HmacSigner, write_history: History, tmp_path: Path
) -> None:
    from airflow_wfe.store.audit_writer import AuditLog

    folder = tmp_path / "anchors"
    store = SqlStore(url, audit=AuditLog(signer=signer, checkpoint_every=5, anchor_dir=folder))
    write_history(store)  # 26 events: checkpoints 5..25; anchors of 5, 10, 15, 20
    names = sorted(p.name for p in folder.iterdir())
    assert [int(n.split("-")[2]) for n in names] == [5, 10, 15, 20]
    assert _findings(store, folder, signer) == []
    with store._engine.begin() as connection:
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq > 18))
    assert _findings(store, folder, signer)[0] == (20, "truncated")
