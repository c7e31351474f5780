"""The chain in a real store (SQLite file and PostgreSQL): sealed with its state changes, and every
kind of tampering detected and named."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from airflow_wfe.core.audit.events import GENESIS_HASH, AuditEvent, body_hash
from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import IllegalTransitionError, RunNotFoundError
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.tables import (
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
    run_table,
    step_table,
    transition_table,
)

History = Callable[..., None]


def _rows(store: SqlStore) -> list[Any]:
    with store._engine.connect() as connection:
        return list(connection.execute(select(audit_event_table).order_by(audit_event_table.c.seq)))


def _first_finding(store: SqlStore, signer: HmacSigner) -> tuple[int | None, str]:
    report = store.verify_audit(signer)
    assert not report.ok, "tampering went unnoticed"
    first = report.findings[0]
    return first.seq, first.kind


def test_every_transition_is_an_event_in_one_valid_chain(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store, runs=2, steps=3)
    rows = _rows(signed_store)
    with signed_store._engine.connect() as connection:
        transitions = connection.execute(select(transition_table)).all()
    # One event per stored transition, in the same order, with the same facts.
    assert len(rows) == len(transitions) == 2 * (3 + 3 * 3 + 1)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert all(body_hash(r.body) == r.hash for r in rows)
    first = next(signed_store.audit_events(dag_id="etl", run_id="run-0")).content()
    assert first["type"] == "run.transition"
    assert first["payload"]["to_state"] == "CREATED"
    assert first["actor"] == "scheduler"
    report = signed_store.verify_audit(signer)
    assert report.ok, report.findings
    assert report.events == len(rows)
    assert report.checkpoints == len(rows) // 5


def test_refused_transition_is_audited_and_changes_nothing(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store, runs=1, steps=1)
    before = len(_rows(signed_store))
    recorder = Recorder(signed_store, NullEmitter())
    with pytest.raises(IllegalTransitionError):
        recorder.step("etl", "run-0", "step0", StepState.RUNNING, actor="user:mallory", reason="x")
    rows = _rows(signed_store)
    assert len(rows) == before + 1
    refused = rows[-1]
    assert (refused.type, refused.actor, refused.step_id) == (
        "transition.refused",
        "user:mallory",
        "step0",
    )
    assert "SUCCEEDED → RUNNING" in refused.body
    assert signed_store.get_run("etl", "run-0").steps[0].state == "SUCCEEDED"
    assert signed_store.verify_audit(signer).ok


def test_no_event_without_its_change_and_no_change_without_its_event(
    url: str, signer: HmacSigner
) -> None:
    class BrokenSigner(HmacSigner):
        def sign(self, message: bytes) -> str:
            raise RuntimeError("signing device unplugged")

    store = SqlStore(url, audit=AuditLog(signer=signer))
    recorder = Recorder(store, NullEmitter())
    with pytest.raises(RunNotFoundError):
        recorder.step("etl", "ghost", "s", StepState.RUNNING, actor="worker")
    assert _rows(store) == []  # the failed change wrote no event
    recorder.run_started("etl", "r", actor="scheduler", reason="go")
    broken = SqlStore(url, audit=AuditLog(signer=BrokenSigner(b"x" * 32)))
    with pytest.raises(RuntimeError, match="unplugged"):
        Recorder(broken, NullEmitter()).step("etl", "r", "s", StepState.RUNNING, actor="worker")
    assert store.get_run("etl", "r").steps == ()  # the event failed, so the change rolled back
    assert len(_rows(store)) == 3


# -- tampering: each kind detected, naming the event -------------------------------------------


def test_edited_payload_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    victim = [r for r in _rows(signed_store) if '"reason":"ok"' in r.body][2]
    with signed_store._engine.begin() as connection:
        connection.execute(
            update(audit_event_table)
            .where(audit_event_table.c.seq == victim.seq)
            .values(body=victim.body.replace('"ok"', '"approved by nobody"'))
        )
    assert _first_finding(signed_store, signer) == (victim.seq, "edited")


def test_edited_query_column_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    with signed_store._engine.begin() as connection:
        connection.execute(
            update(audit_event_table).where(audit_event_table.c.seq == 4).values(actor="user:eve")
        )
    assert _first_finding(signed_store, signer) == (4, "edited")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", 'worker","x'),
        ("step_id", None),
        ("at", "2026-11-25T08:54:21.455012Z\n"),
        ("seq", 99),
    ],
)
def test_edited_column_with_json_characters_or_null_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History, column: str, value: Any
) -> None:
    """Columns are compared with the body as text: quotes, control characters and nulls in an
    edited column must not make it read as the original."""
    write_history(signed_store)
    victim = next(r for r in _rows(signed_store) if r.seq > 6 and r.step_id is not None)
    with signed_store._engine.begin() as connection:
        connection.execute(
            update(audit_event_table)
            .where(audit_event_table.c.seq == victim.seq)
            .values({column: value})
        )
    seq, kind = _first_finding(signed_store, signer)
    if column == "seq":  # the event moved to #99: its place is empty, it is out of place
        assert (seq, kind) == (victim.seq, "deleted")
    else:
        assert (seq, kind) == (victim.seq, "edited")


def test_deleted_middle_event_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    with signed_store._engine.begin() as connection:
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq == 9))
    seq, kind = _first_finding(signed_store, signer)
    assert (seq, kind) == (9, "deleted")
    assert "#9 missing" in str(signed_store.verify_audit(signer).findings[0])


def test_swapped_events_are_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    rows = {r.seq: r for r in _rows(signed_store)}
    a, b = rows[7], rows[8]
    columns = ("at", "type", "actor", "dag_id", "run_id", "step_id", "body", "prev_hash", "hash")
    with signed_store._engine.begin() as connection:
        for target, source in ((a, b), (b, a)):
            connection.execute(
                update(audit_event_table)
                .where(audit_event_table.c.seq == target.seq)
                .values({c: getattr(source, c) for c in columns})
            )
    seq, kind = _first_finding(signed_store, signer)
    assert seq == 7
    assert kind in {"reordered", "broken link"}


def test_dropped_tail_is_named(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    last = _rows(signed_store)[-1].seq
    with signed_store._engine.begin() as connection:
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq > last - 3))
        # Also remove the checkpoints that covered them: the signed head still tells.
        connection.execute(
            delete(audit_checkpoint_table).where(audit_checkpoint_table.c.seq > last - 3)
        )
    seq, kind = _first_finding(signed_store, signer)
    assert (seq, kind) == (last - 2, "truncated")


def test_rewritten_chain_needs_the_key(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    """An attacker edits an event and recomputes every later hash and link: only the signatures
    (checkpoints, head) can tell, and they do."""
    write_history(signed_store)
    rows = _rows(signed_store)
    prev = rows[1].hash
    with signed_store._engine.begin() as connection:
        for row in rows[2:]:
            body = row.body.replace('"started"', '"forged"') if row.seq == 3 else row.body
            body = body.replace(row.prev_hash, prev)
            digest = body_hash(body)
            connection.execute(
                update(audit_event_table)
                .where(audit_event_table.c.seq == row.seq)
                .values(body=body, prev_hash=prev, hash=digest)
            )
            prev = digest
        connection.execute(update(audit_head_table).values(hash=prev))
    seq, kind = _first_finding(signed_store, signer)
    assert (seq, kind) == (5, "rewritten")  # the first checkpoint after the edit


def test_forged_head_signature_is_refused(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store, runs=1, steps=1)
    with signed_store._engine.begin() as connection:
        connection.execute(update(audit_head_table).values(signature="0" * 64))
    report = signed_store.verify_audit(signer)
    assert [(f.seq, f.kind) for f in report.findings] == [(None, "bad signature")]
    other = HmacSigner(b"another-key-another-key-0123456789")
    assert any(f.kind == "unknown key" for f in signed_store.verify_audit(other).findings)


def test_verify_since_checks_a_window(
    signed_store: SqlStore, signer: HmacSigner, write_history: History
) -> None:
    write_history(signed_store)
    rows = _rows(signed_store)
    cut = datetime.fromisoformat(rows[10].at.replace("Z", "+00:00"))
    report = signed_store.verify_audit(signer, since=cut)
    assert report.ok, report.findings
    assert report.first_seq is not None
    assert report.first_seq <= rows[10].seq
    assert report.last_seq == rows[-1].seq


def test_secrets_never_reach_the_store(url: str, signer: HmacSigner) -> None:
    from airflow_wfe.core.audit.redact import Redactor

    store = SqlStore(
        url,
        audit=AuditLog(
            signer=signer,
            redactor=Redactor(masker=lambda t: t.replace("hunter2-secret", "***")),
        ),
    )
    recorder = Recorder(store, NullEmitter())
    recorder.run_started("etl", "r", actor="scheduler", reason="go")
    recorder.step(
        "etl", "r", "s", StepState.RUNNING, actor="worker", reason="login with hunter2-secret"
    )
    store.record_events(
        "manual",
        [
            AuditEvent(
                type="manual.action",
                actor="cli:alice",
                at=datetime.now(UTC),
                payload={"params": {"db_password": "pa55word-xyz", "rows": 3}},
            )
        ],
    )
    with store._engine.connect() as connection:
        dump = " ".join(
            str(value)
            for table in (run_table, step_table, transition_table, audit_event_table)
            for row in connection.execute(select(table))
            for value in row
        )
    assert "hunter2-secret" not in dump
    assert "pa55word-xyz" not in dump
    assert '"db_password":"***"' in dump
    assert '"rows":3' in dump


def test_a_chain_of_old_and_new_bodies_verifies_and_tampering_with_either_is_named(
    url: str, signer: HmacSigner, write_history: History
) -> None:
    """A store written before body layout 2 goes on with version-2 events after an upgrade."""
    old = SqlStore(url, audit=AuditLog(signer=signer, checkpoint_every=5, body_version=1))
    write_history(old, runs=1, steps=2)
    new = SqlStore(url, audit=AuditLog(signer=signer, checkpoint_every=5))
    recorder = Recorder(new, NullEmitter())
    recorder.run_started("etl", "later", actor="scheduler", reason="started")
    for state in (StepState.RUNNING, StepState.SUCCEEDED):
        recorder.step("etl", "later", "s", state, actor="worker", reason="ok", try_number=1)
    rows = _rows(new)
    assert {r.body[0] for r in rows} == {"{", "["}
    assert all(body_hash(r.body) == r.hash for r in rows)
    assert [e.content()["seq"] for e in new.audit_events()] == [r.seq for r in rows]
    assert new.verify_audit(signer).ok
    v1 = next(r for r in rows if r.body.startswith("{") and r.seq > 2)
    v2 = next(r for r in rows if r.body.startswith("[") and r.seq > v1.seq + 2)
    with new._engine.begin() as connection:
        for row in (v1, v2):
            connection.execute(
                update(audit_event_table)
                .where(audit_event_table.c.seq == row.seq)
                .values(step_id="forged")
            )
    findings = [(f.seq, f.kind) for f in new.verify_audit(signer).findings]
    assert findings == [(v1.seq, "edited"), (v2.seq, "edited")]


def test_version_2_body_is_header_then_rest(signed_store: SqlStore, write_history: History) -> None:
    write_history(signed_store, runs=1, steps=1)
    row = _rows(signed_store)[1]
    event = next(e for e in signed_store.audit_events() if e.seq == row.seq)
    content = event.content()
    assert (content["seq"], content["prev"], content["actor"]) == (
        row.seq,
        row.prev_hash,
        "scheduler",
    )
    assert content["payload"]["to_state"] == "VALIDATED"
    if signed_store.audit.body_version == 2:
        assert row.body.startswith(f'[2,{row.seq},"{row.prev_hash}","{row.at}","run.transition",')
        assert content["v"] == 2
    else:
        assert content["v"] == 1


def test_a_new_store_has_the_genesis_head_to_lock(url: str) -> None:
    """Writers lock the head row, so it must exist before the first append (no insert race)."""
    store = SqlStore(url)
    with store._engine.connect() as connection:
        head = connection.execute(text("SELECT chain, seq, hash FROM wfe_audit_head")).one()
    assert tuple(head) == ("main", 0, GENESIS_HASH)
