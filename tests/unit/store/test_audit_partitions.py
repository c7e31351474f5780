"""Partitioned audit chains on SQLite and PostgreSQL: honest trails verify (in one process and in
parallel), an old single-chain store migrates and goes on verifying, and each way of tampering with
a partition (its head deleted, the whole partition deleted, two partitions swapped, one rolled back
behind a tree head or an anchor, the tree heads deleted or edited) is detected and named."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from airflow_wfe.core.audit.events import AuditEvent, EventType, seal
from airflow_wfe.core.audit.partitions import MAIN, genesis_hash, partition_of
from airflow_wfe.core.audit.signing import HmacSigner, checkpoint_message, head_message
from airflow_wfe.exceptions import AuditError
from airflow_wfe.store import SqlStore, audit_verify, schema
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import get_engine
from airflow_wfe.store.tables import (
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
    audit_tree_table,
)

PARTITIONS = 4


def _dags() -> dict[str, list[str]]:
    """Two DAG ids per partition (``main`` included), found by the partition function itself."""
    found: dict[str, list[str]] = defaultdict(list)
    number = 0
    while len(found) < PARTITIONS or min(len(v) for v in found.values()) < 2:
        dag_id = f"dag-{number}"
        chain = partition_of(dag_id, PARTITIONS)
        if len(found[chain]) < 2:
            found[chain].append(dag_id)
        number += 1
    return dict(found)


DAGS = _dags()
#: A partition other than main, and another one, for the tampering below.
VICTIM, OTHER = sorted(c for c in DAGS if c != MAIN)[:2]


def _event(dag_id: str | None, index: int) -> AuditEvent:
    return AuditEvent(
        type=EventType.MANUAL_ACTION,
        actor="tester",
        at=datetime.now(UTC),
        dag_id=dag_id,
        run_id=None if dag_id is None else f"run-{index % 3}",
        payload={"index": index},
    )


def _store(url: str, signer: HmacSigner, partitions: int = PARTITIONS) -> SqlStore:
    return SqlStore(url, audit=AuditLog(signer=signer, checkpoint_every=5, partitions=partitions))


def _fill(store: SqlStore, rounds: int = 6) -> int:
    """Events for every DAG (one per transaction, and some multi-DAG transactions), and a few
    without a DAG; returns how many."""
    dags = [d for ids in DAGS.values() for d in ids]
    count = 0
    for index in range(rounds):
        for dag_id in dags:
            store.record_events("t", [_event(dag_id, index)])
            count += 1
        store.record_events("t", [_event(d, index) for d in dags[:3]] + [_event(None, index)])
        count += 4
    return count


@pytest.fixture
def parted(url: str, signer: HmacSigner) -> SqlStore:
    store = _store(url, signer)
    _fill(store)
    return store


def _kinds(store: SqlStore, signer: HmacSigner) -> set[tuple[str, str]]:
    report = store.verify_audit(signer)
    assert not report.ok, "tampering went unnoticed"
    return {(f.chain, f.kind) for f in report.findings}


def test_an_honest_partitioned_trail_verifies_with_every_partition_numbered_from_one(
    parted: SqlStore, signer: HmacSigner
) -> None:
    report = parted.verify_audit(signer)
    assert report.ok, report.findings
    with parted._engine.connect() as connection:
        rows = connection.execute(
            select(audit_event_table.c.chain, audit_event_table.c.seq, audit_event_table.c.dag_id)
        ).all()
        trees = connection.execute(select(audit_tree_table)).all()
    by_chain: dict[str, list[int]] = defaultdict(list)
    for chain, seq, dag_id in rows:
        by_chain[chain].append(seq)
        assert chain == partition_of(dag_id, PARTITIONS)  # each DAG in its own partition's chain
    assert set(by_chain) == set(DAGS)
    for seqs in by_chain.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert report.events == len(rows)
    assert trees, "no tree head was written"
    assert all(e.chain == partition_of(e.dag_id, PARTITIONS) for e in parted.audit_events())
    assert any("partitions" in note for note in report.notes)


def test_parallel_verification_finds_what_one_process_finds(
    parted: SqlStore, signer: HmacSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = parted.verify_audit(signer)
    monkeypatch.setattr(audit_verify, "PARALLEL_FROM", 1)
    called = []
    original = audit_verify.verify_in_parallel
    monkeypatch.setattr(
        audit_verify,
        "verify_in_parallel",
        lambda *a, **k: called.append(1) or original(*a, **k),
    )
    parallel = parted.verify_audit(signer)
    assert called, "the workers were not used"
    assert parallel.ok
    assert (parallel.events, parallel.checkpoints) == (serial.events, serial.checkpoints)
    with parted._engine.begin() as connection:
        connection.execute(
            update(audit_event_table)
            .where(audit_event_table.c.chain == VICTIM, audit_event_table.c.seq == 3)
            .values(actor="mallory")
        )
    found = parted.verify_audit(signer)
    assert (VICTIM, 3, "edited") in {(f.chain, f.seq, f.kind) for f in found.findings}
    assert f"partition {VICTIM}, event #3: edited" in str(found.findings[0])


def test_a_deleted_partition_head_is_named_and_the_writer_refuses_that_partition(
    parted: SqlStore, signer: HmacSigner
) -> None:
    with parted._engine.begin() as connection:
        connection.execute(delete(audit_head_table).where(audit_head_table.c.chain == VICTIM))
    assert (VICTIM, "head missing") in _kinds(parted, signer)
    with pytest.raises(AuditError, match=rf"chain {VICTIM!r}\) is missing"):
        parted.record_events("t", [_event(DAGS[VICTIM][0], 99)])
    # The other partitions go on recording.
    parted.record_events("t", [_event(DAGS[OTHER][0], 99)])


def test_a_deleted_partition_is_named_by_the_tree_head(
    parted: SqlStore, signer: HmacSigner
) -> None:
    with parted._engine.begin() as connection:
        for table in (audit_event_table, audit_checkpoint_table, audit_head_table):
            connection.execute(delete(table).where(table.c.chain == VICTIM))
    assert (VICTIM, "partition missing") in _kinds(parted, signer)


def test_deleting_the_tree_heads_too_leaves_partitions_no_tree_head_names(
    parted: SqlStore, signer: HmacSigner
) -> None:
    with parted._engine.begin() as connection:
        for table in (audit_event_table, audit_checkpoint_table, audit_head_table):
            connection.execute(delete(table).where(table.c.chain == VICTIM))
        connection.execute(delete(audit_tree_table))
    assert (OTHER, "unregistered partition") in _kinds(parted, signer)


def test_swapped_partitions_break_at_their_first_link_and_head(
    parted: SqlStore, signer: HmacSigner
) -> None:
    with parted._engine.begin() as connection:
        for table in (audit_event_table, audit_checkpoint_table, audit_head_table):
            for old, new in ((VICTIM, "swap"), (OTHER, VICTIM), ("swap", OTHER)):
                connection.execute(update(table).where(table.c.chain == old).values(chain=new))
    kinds = _kinds(parted, signer)
    for chain in (VICTIM, OTHER):
        assert (chain, "broken link") in kinds
        assert (chain, "bad signature") in kinds


def _copy_partition(store: SqlStore, chain: str) -> dict[Any, list[dict[str, Any]]]:
    with store._engine.connect() as connection:
        return {
            table: [
                dict(r._mapping)
                for r in connection.execute(select(table).where(table.c.chain == chain))
            ]
            for table in (audit_event_table, audit_checkpoint_table, audit_head_table)
        }


def _restore_partition(store: SqlStore, chain: str, copy: dict[Any, list[dict[str, Any]]]) -> None:
    with store._engine.begin() as connection:
        for table, rows in copy.items():
            connection.execute(delete(table).where(table.c.chain == chain))
            if rows:
                connection.execute(insert(table), rows)


def test_a_partition_rolled_back_behind_a_tree_head_is_named(
    parted: SqlStore, signer: HmacSigner
) -> None:
    old = _copy_partition(parted, VICTIM)
    _fill(parted, rounds=4)  # the victim's checkpoints write tree heads past the copy
    _restore_partition(parted, VICTIM, old)  # its own signatures all hold
    assert (VICTIM, "truncated") in _kinds(parted, signer)


def test_a_partition_rolled_back_behind_an_anchor_is_named(
    parted: SqlStore, signer: HmacSigner, tmp_path: Path
) -> None:
    old = _copy_partition(parted, VICTIM)
    parted.record_events("t", [_event(DAGS[VICTIM][0], 50)])
    parted.audit_anchor(signer, tmp_path)
    _restore_partition(parted, VICTIM, old)
    with parted._engine.begin() as connection:
        connection.execute(delete(audit_tree_table).where(audit_tree_table.c.reason != "partition"))
    report = parted.verify_audit_anchors(tmp_path, signer)
    assert report.findings[0].kind == "truncated"
    assert f"partition {VICTIM}" in report.findings[0].message


def test_an_edited_tree_head_vouches_for_nothing_and_is_named(
    parted: SqlStore, signer: HmacSigner
) -> None:
    with parted._engine.begin() as connection:
        latest = connection.execute(
            select(audit_tree_table).order_by(audit_tree_table.c.id.desc()).limit(1)
        ).one()
        connection.execute(
            update(audit_tree_table)
            .where(audit_tree_table.c.id == latest.id)
            .values(heads=latest.heads.replace(f'["{VICTIM}",', f'["{VICTIM}x",'))
        )
    assert (MAIN, "edited") in _kinds(parted, signer)


def test_changing_the_partition_count_keeps_one_verifiable_trail(
    url: str, signer: HmacSigner
) -> None:
    single = _store(url, signer, partitions=1)
    first = _fill(single, rounds=2)
    with single._engine.connect() as connection:
        assert {c for (c,) in connection.execute(select(audit_event_table.c.chain))} == {MAIN}
    parted = _store(url, signer)
    second = _fill(parted, rounds=2)
    report = parted.verify_audit(signer)
    assert report.ok, report.findings
    assert report.events == first + second


def test_a_single_chain_store_written_before_partitions_migrates_and_verifies(
    url: str, signer: HmacSigner
) -> None:
    """The layout of revision 0007 (events keyed by seq, no chain column), written by hand as the
    old writer did, then migrated: it verifies, and new events of every partition join it."""
    schema.upgrade(url, "0007")
    prev, events = genesis_hash(MAIN), []
    for index in range(12):
        event = seal(_event("dag-old", index), index + 1, prev)
        events.append(event)
        prev = event.hash
    columns = ("seq", "at", "type", "actor", "dag_id", "run_id", "step_id", "body")
    last = events[-1]
    store = _store(url, signer)
    with get_engine(url).begin() as connection:  # not the store's: it would refuse revision 0007
        for event in events:
            values = {c: getattr(event, c) for c in columns}
            values.update(prev_hash=event.prev_hash, hash=event.hash)
            names = ", ".join(values)
            marks = ", ".join(f":{n}" for n in values)
            connection.execute(
                text(f"INSERT INTO wfe_audit_event ({names}) VALUES ({marks})"), values
            )
        connection.execute(
            text(
                "INSERT INTO wfe_audit_checkpoint (seq, hash, at, algorithm, key_id, signature, "
                "reason) VALUES (10, :hash, :at, :algorithm, :key_id, :signature, 'periodic')"
            ),
            {
                "hash": events[9].hash,
                "at": events[9].at,
                "algorithm": signer.algorithm,
                "key_id": signer.key_id,
                "signature": signer.sign(checkpoint_message(10, events[9].hash, events[9].at)),
            },
        )
        connection.execute(
            text(
                "UPDATE wfe_audit_head SET seq = 12, hash = :hash, at = :at, algorithm = "
                ":algorithm, key_id = :key_id, signature = :signature WHERE chain = 'main'"
            ),
            {
                "hash": last.hash,
                "at": last.at,
                "algorithm": signer.algorithm,
                "key_id": signer.key_id,
                "signature": signer.sign(head_message(12, last.hash, last.at)),
            },
        )
    schema.upgrade(url)
    schema._checked.clear()
    report = store.verify_audit(signer)
    assert report.ok, report.findings
    assert (report.events, report.last_seq, report.checkpoints) == (12, 12, 1)
    added = _fill(store, rounds=1)
    report = store.verify_audit(signer)
    assert report.ok, report.findings
    assert report.events == 12 + added
