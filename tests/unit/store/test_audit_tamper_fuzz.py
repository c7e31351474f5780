"""Random tampering at scale: every edit of the store by someone without the key is detected, and
the report's first finding names the first bad entry (its partition and position).

One seeded base trail is built once per backend: governed runs through the recorder and events
without a DAG, over four partitions, with a checkpoint every 5 events, an archive boundary in three
partitions, a key rotation (old checkpoints and the archive records are signed with the old key) and
two external anchors (the second after a snapshot of the store, which the rollback attacks restore).
Each trial applies one random attack inside a transaction, verifies the trail (and compares it with
the anchors) through that same transaction, and rolls back: the base is never changed, so a trial
costs a few milliseconds. The expected first finding is computed from the attack and the base's
layout (which positions are signed), never from what the verifier says.

A trial that is missed or names the wrong entry fails the test with the seed, the trial number and
the attack (``WFE_TAMPER_SEED`` and ``WFE_TAMPER_TRIALS`` replay or widen a run). A sample of trials
also goes through the public path: the attack committed into a file copy of the store, verified by
``SqlStore.verify_audit`` read-only.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
from sqlalchemy import Connection, delete, insert, select, update
from test_audit_partitions import DAGS, _event

from airflow_wfe.core.audit.events import body_hash, header, seal
from airflow_wfe.core.audit.partitions import MAIN, chain_order, genesis_hash, parse_heads
from airflow_wfe.core.audit.signing import (
    HmacSigner,
    Keyring,
    checkpoint_message,
    head_message,
    tree_message,
)
from airflow_wfe.core.audit.verify import Finding, VerifyReport
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_anchor import read_anchors
from airflow_wfe.store.audit_verify import verify_anchors, verify_trail
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import dispose_engines
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
    audit_tree_table,
)

SEED: Final = int(os.environ.get("WFE_TAMPER_SEED", "20261206"))
SQLITE_TRIALS: Final = int(os.environ.get("WFE_TAMPER_TRIALS", "10000"))
POSTGRES_TRIALS: Final = 300
#: Trials that go through the public, read-only path on a file copy (SQLite).
PUBLIC_TRIALS: Final = 60

OLD_KEY: Final = HmacSigner(b"tamper-fuzz-old-key-0123456789abcdef")
NEW_KEY: Final = HmacSigner(b"tamper-fuzz-new-key-0123456789abcdef")
#: The attacker's own key: signs well-formed marks the auditor's keys do not know.
MALLORY: Final = HmacSigner(b"mallory-has-her-own-key-0123456789")
KEYS: Final = Keyring([OLD_KEY, NEW_KEY])
TABLES: Final = (
    audit_event_table,
    audit_head_table,
    audit_checkpoint_table,
    audit_archive_table,
    audit_tree_table,
)
#: The chains of the partitions, in partition order.
CHAINS: Final = sorted(DAGS, key=chain_order)
#: Partitions whose events before the archive boundary are archived (the last one has none then).
ARCHIVED_DAGS: Final = [d for c in CHAINS[:-1] for d in DAGS[c]]


def _store(url: str, signer: HmacSigner) -> SqlStore:
    return SqlStore(url, audit=AuditLog(signer=signer, checkpoint_every=5, partitions=len(DAGS)))


def _runs(store: SqlStore, dags: list[str], tag: str) -> None:
    """A governed run per DAG (3 run events, 2 steps of 2 transitions), through the recorder."""
    recorder = Recorder(store, NullEmitter())
    for dag_id in dags:
        recorder.run_started(dag_id, tag, actor="scheduler", reason="started")
        for step in ("extract", "load"):
            for state in (StepState.RUNNING, StepState.SUCCEEDED):
                recorder.step(dag_id, tag, step, state, actor="worker", reason="ok", try_number=1)
        recorder.run_finished(dag_id, tag, succeeded=True, actor="scheduler", reason="done")


def _rows(connection: Connection) -> dict[Any, list[dict[str, Any]]]:
    return {t: [dict(r._mapping) for r in connection.execute(select(t))] for t in TABLES}


def _restore(connection: Connection, rows: dict[Any, list[dict[str, Any]]]) -> None:
    for table in TABLES:
        connection.execute(delete(table))
    for table, values in rows.items():
        if values:
            connection.execute(insert(table), values)


@dataclass
class ChainLayout:
    """What the base holds of one partition's chain (read from the tables, not the verifier)."""

    first: int
    last: int
    rows: dict[int, dict[str, Any]]
    checkpoints: dict[int, dict[str, Any]]
    #: Positions valid tree heads vouch for.
    marks: set[int] = field(default_factory=set)
    archive: dict[str, Any] | None = None

    @property
    def signed(self) -> set[int]:
        """Positions a signature vouches for: checkpoints, tree-head marks and the head."""
        return {s for s in self.checkpoints.keys() | self.marks if s >= self.first} | {self.last}

    def signed_from(self, seq: int) -> int:
        return min(s for s in self.signed if s >= seq)


@dataclass
class Base:
    chains: dict[str, ChainLayout]
    trees: list[dict[str, Any]]
    heads: dict[str, dict[str, Any]]
    anchors: list[tuple[str, str]]
    #: The audit tables as they were before the last anchor (what a rollback restores).
    snapshot: dict[Any, list[dict[str, Any]]]
    #: The positions of the last anchor: (chain, seq) in partition order.
    anchored: list[tuple[str, int]]


def build_base(url: str, anchor_dir: Path, archive_dir: Path) -> Base:
    """The seeded base trail: ~330 events over 4 partitions (see the module's docstring)."""
    old = _store(url, OLD_KEY)
    _runs(old, ARCHIVED_DAGS, "early")
    old.record_events("t", [_event(None, i) for i in range(3)])
    time.sleep(0.01)
    boundary = datetime.now(UTC)
    time.sleep(0.01)
    every = [d for c in CHAINS for d in DAGS[c]]
    _runs(old, every, "middle")
    archived = old.archive_audit(OLD_KEY, older_than=boundary, folder=archive_dir, actor="tester")
    assert archived is not None
    assert archived.events > 40
    for index in range(4):
        old.record_events("t", [_event(d, index) for d in every[index::3]])
    old.audit_anchor(OLD_KEY, anchor_dir)
    new = _store(url, NEW_KEY)  # the key is rotated: the old one is kept to verify
    _runs(new, every[:5], "late")
    with new._engine.connect() as connection:
        snapshot = _rows(connection)
    _runs(new, every[2:], "last")
    new.record_events("t", [_event(None, 9)])
    new.audit_anchor(NEW_KEY, anchor_dir)
    assert new.verify_audit(KEYS).ok
    with new._engine.connect() as connection:
        everything = _rows(connection)
    layouts = {}
    for chain in CHAINS:
        rows = {int(r["seq"]): r for r in everything[audit_event_table] if r["chain"] == chain}
        archive = [r for r in everything[audit_archive_table] if r["chain"] == chain]
        layouts[chain] = ChainLayout(
            first=min(rows),
            last=max(rows),
            rows=rows,
            checkpoints={
                int(r["seq"]): r
                for r in everything[audit_checkpoint_table]
                if r["chain"] == chain and int(r["seq"]) >= min(rows)
            },
            archive=archive[0] if archive else None,
        )
    for tree in everything[audit_tree_table]:
        for chain, seq, _hash in parse_heads(tree["heads"]):
            layouts[chain].marks.add(seq)
    assert [c for c in CHAINS if layouts[c].archive] == CHAINS[:-1]
    anchors = read_anchors(anchor_dir)
    latest = max(anchors)[1]
    data = json.loads(latest)
    anchored = [(MAIN, int(data["seq"]))] + [(c, int(s)) for c, s, _h in data["partitions"]]
    return Base(
        chains=layouts,
        trees=everything[audit_tree_table],
        heads={r["chain"]: r for r in everything[audit_head_table]},
        anchors=anchors,
        snapshot=snapshot,
        anchored=anchored,
    )


# -- the attacks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """The first finding an attack must produce: its partition, its position (``None``: the
    chain head, or a tree head for ``main``) and the kinds that name it correctly."""

    chain: str
    seq: int | None
    kinds: frozenset[str]
    #: Which verification must name it: the trail itself, or the comparison with the anchors.
    by: str = "trail"

    def matches(self, finding: Finding) -> bool:
        return (finding.chain, finding.seq) == (self.chain, self.seq) and finding.kind in self.kinds

    def __str__(self) -> str:
        where = "head" if self.seq is None else f"#{self.seq}"
        return f"{self.by}: {self.chain} {where} {'|'.join(sorted(self.kinds))}"


Attack = Callable[[random.Random, Base, Connection], tuple[str, Expect]]

EDITED = frozenset({"edited"})
SIGNATURES = frozenset({"bad signature", "unknown key", "unsigned"})
REWRITTEN = frozenset({"rewritten", "rolled back"})
GAP = frozenset({"deleted", "truncated"})


def _event_where(chain: str, seq: int) -> Any:
    return (audit_event_table.c.chain == chain) & (audit_event_table.c.seq == seq)


def _pick(rng: random.Random, base: Base, *, archived: bool = False) -> tuple[str, ChainLayout]:
    chains = [c for c in CHAINS if not archived or base.chains[c].archive]
    chain = rng.choice(chains)
    return chain, base.chains[chain]


def _resealed(row: dict[str, Any], *, seq: int, prev: str, actor: str) -> dict[str, Any]:
    """The attacker's valid version-2 body for ``row`` at ``seq`` after ``prev``, with another
    actor: body, columns and hash all agree (only signatures can tell)."""
    old = header(
        int(row["seq"]),
        row["prev_hash"],
        row["at"],
        row["type"],
        row["actor"],
        row["dag_id"],
        row["run_id"],
        row["step_id"],
    )
    assert row["body"].startswith(old), "the base writes version-2 bodies"
    new = header(
        seq, prev, row["at"], row["type"], actor, row["dag_id"], row["run_id"], row["step_id"]
    )
    body = new + row["body"][len(old) :]
    return {
        **row,
        "seq": seq,
        "actor": actor,
        "prev_hash": prev,
        "body": body,
        "hash": body_hash(body),
    }


def edit_column(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    seq = rng.randint(layout.first, layout.last)
    column = rng.choice(["at", "type", "actor", "dag_id", "run_id", "step_id"])
    value = layout.rows[seq][column]
    new = "x" if value is None else value[:-1] + ("0" if value[-1] != "0" else "1")
    c.execute(update(audit_event_table).where(_event_where(chain, seq)).values({column: new}))
    return f"{chain} #{seq}: column {column} {value!r} -> {new!r}", Expect(chain, seq, EDITED)


def edit_body(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    seq = rng.randint(layout.first, layout.last)
    body = layout.rows[seq]["body"]
    at = rng.randrange(len(body))
    char = rng.choice([ch for ch in '0123456789abcdefxyz"{}[], ' if ch != body[at]])
    forged = body[:at] + char + body[at + 1 :]
    c.execute(update(audit_event_table).where(_event_where(chain, seq)).values(body=forged))
    return f"{chain} #{seq}: body[{at}] {body[at]!r} -> {char!r}", Expect(chain, seq, EDITED)


def edit_hash(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    seq = rng.randint(layout.first, layout.last)
    column = rng.choice(["hash", "prev_hash"])
    value = f"{rng.getrandbits(256):064x}"
    c.execute(update(audit_event_table).where(_event_where(chain, seq)).values({column: value}))
    return f"{chain} #{seq}: {column} replaced", Expect(chain, seq, EDITED)


def reseal_one(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """One event replaced by a self-consistent forgery (hash recomputed, links not): named at
    itself when a signature covers its position, else where the next event's link breaks."""
    chain, layout = _pick(rng, base)
    seq = rng.randint(layout.first, layout.last)
    row = layout.rows[seq]
    forged = _resealed(row, seq=seq, prev=row["prev_hash"], actor="user:mallory")
    c.execute(update(audit_event_table).where(_event_where(chain, seq)).values(forged))
    if seq in layout.signed:
        expect = Expect(chain, seq, REWRITTEN)
    else:
        expect = Expect(chain, seq + 1, frozenset({"broken link"}))
    return f"{chain} #{seq}: resealed with another actor", expect


def rewrite_tail(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """Every event from one on rewritten with recomputed hashes and links: named at the first
    signed position at or after it (checkpoint, tree-head mark or head)."""
    chain, layout = _pick(rng, base)
    start = rng.randint(layout.first, layout.last)
    prev = layout.rows[start]["prev_hash"]
    for seq in range(start, layout.last + 1):
        forged = _resealed(layout.rows[seq], seq=seq, prev=prev, actor="user:mallory")
        c.execute(update(audit_event_table).where(_event_where(chain, seq)).values(forged))
        prev = forged["hash"]
    if rng.random() < 0.5:  # the head moved to the forgery too (its signature cannot follow)
        c.execute(
            update(audit_head_table).where(audit_head_table.c.chain == chain).values(hash=prev)
        )
    return (
        f"{chain} #{start}..#{layout.last}: rewritten, hashes and links recomputed",
        Expect(chain, layout.signed_from(start), REWRITTEN),
    )


def delete_events(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    first = rng.randint(layout.first, layout.last)
    last = min(layout.last, first + rng.choice([0, 0, 1, 2, 7]))
    c.execute(
        delete(audit_event_table).where(
            audit_event_table.c.chain == chain,
            audit_event_table.c.seq >= first,
            audit_event_table.c.seq <= last,
        )
    )
    kind = "truncated" if last == layout.last else "deleted"
    return f"{chain} #{first}..#{last}: deleted", Expect(chain, first, frozenset({kind}))


def cut_tail(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """The tail cut, the head then deleted, re-pointed at a checkpoint (its signature copied),
    re-signed with the attacker's key, or left alone."""
    chain, layout = _pick(rng, base)
    candidates = [s for s in layout.checkpoints if s < layout.last]
    keep = rng.choice(candidates)
    c.execute(
        delete(audit_event_table).where(
            audit_event_table.c.chain == chain, audit_event_table.c.seq > keep
        )
    )
    c.execute(
        delete(audit_checkpoint_table).where(
            audit_checkpoint_table.c.chain == chain, audit_checkpoint_table.c.seq > keep
        )
    )
    head = audit_head_table.c.chain == chain
    how = rng.choice(["left", "deleted", "checkpoint", "mallory"])
    checkpoint = layout.checkpoints[keep]
    if how == "deleted":
        c.execute(delete(audit_head_table).where(head))
    elif how == "checkpoint":
        c.execute(
            update(audit_head_table)
            .where(head)
            .values(
                {
                    k: checkpoint[k]
                    for k in ("seq", "hash", "at", "algorithm", "key_id", "signature")
                }
            )
        )
    elif how == "mallory":
        c.execute(
            update(audit_head_table)
            .where(head)
            .values(
                seq=keep,
                hash=checkpoint["hash"],
                at=checkpoint["at"],
                key_id=MALLORY.key_id,
                signature=MALLORY.sign(
                    head_message(keep, checkpoint["hash"], checkpoint["at"], chain)
                ),
            )
        )
    # Whatever the head says, the tree heads (and, left alone, the head) vouch for later events.
    vouched = any(s > keep for s in layout.marks) or how == "left"
    expect = (
        Expect(chain, keep + 1, frozenset({"truncated"}))
        if vouched
        else Expect(chain, None, SIGNATURES | {"head missing"})
    )
    return f"{chain}: cut after checkpoint #{keep}, head {how}", expect


def append_unchained(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """An event sealed after the head (a perfect link) that the head never moved to."""
    chain, layout = _pick(rng, base)
    last = layout.rows[layout.last]
    dag_id = rng.choice(DAGS[chain])
    sealed = seal(_event(dag_id, 77), layout.last + 1, last["hash"])
    c.execute(insert(audit_event_table).values(_sealed_row(chain, sealed)))
    return f"{chain} #{layout.last + 1}: appended outside the chain", Expect(
        chain, layout.last + 1, frozenset({"not chained"})
    )


def _sealed_row(chain: str, sealed: Any) -> dict[str, Any]:
    return {
        "chain": chain,
        "seq": sealed.seq,
        "at": sealed.at,
        "type": sealed.type,
        "actor": sealed.actor,
        "dag_id": sealed.dag_id,
        "run_id": sealed.run_id,
        "step_id": sealed.step_id,
        "body": sealed.body,
        "prev_hash": sealed.prev_hash,
        "hash": sealed.hash,
    }


def _shift_up(c: Connection, chain: str, from_seq: int) -> None:
    """Make room at ``from_seq`` (two steps: a primary key moved one by one would collide)."""
    where = (audit_event_table.c.chain == chain) & (audit_event_table.c.seq >= from_seq)
    c.execute(update(audit_event_table).where(where).values(seq=audit_event_table.c.seq + 10**6))
    c.execute(
        update(audit_event_table)
        .where((audit_event_table.c.chain == chain) & (audit_event_table.c.seq >= 10**6))
        .values(seq=audit_event_table.c.seq - 10**6 + 1)
    )


def insert_event(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """An event inserted in the middle, the rest moved up: a junk row is named at itself; one
    sealed and linked to its predecessor at itself when its position is signed, else at the
    displaced event after it (its body names its old position)."""
    chain, layout = _pick(rng, base)
    seq = rng.randint(layout.first, layout.last)
    _shift_up(c, chain, seq)
    prev = layout.rows[seq]["prev_hash"]
    sealed = seal(_event(rng.choice(DAGS[chain]), 78), seq, prev)
    row = _sealed_row(chain, sealed)
    if rng.random() < 0.3:
        row.update(body='{"junk":true}', hash=f"{rng.getrandbits(256):064x}")
        return f"{chain} #{seq}: junk inserted", _insert(c, row, Expect(chain, seq, EDITED))
    if seq in layout.signed:
        expect = Expect(chain, seq, REWRITTEN)
    else:
        expect = Expect(chain, seq + 1, frozenset({"reordered"}))
    return f"{chain} #{seq}: sealed event inserted", _insert(c, row, expect)


def _insert(c: Connection, row: dict[str, Any], expect: Expect) -> Expect:
    c.execute(insert(audit_event_table).values(row))
    return expect


def swap_events(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    first, second = sorted(rng.sample(range(layout.first, layout.last + 1), 2))
    for seq, other in ((first, second), (second, first)):
        values = {k: v for k, v in layout.rows[other].items() if k not in ("chain", "seq")}
        c.execute(update(audit_event_table).where(_event_where(chain, seq)).values(values))
    return f"{chain} #{first} <-> #{second}: swapped", Expect(
        chain, first, frozenset({"reordered"})
    )


def move_event(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """An event moved to the end of another partition's chain."""
    chain, layout = _pick(rng, base)
    target = rng.choice([x for x in CHAINS if x != chain])
    seq = rng.randint(layout.first, layout.last)
    to = base.chains[target].last + 1
    c.execute(
        update(audit_event_table).where(_event_where(chain, seq)).values(chain=target, seq=to)
    )
    gone = Expect(chain, seq, GAP)
    added = Expect(target, to, frozenset({"broken link", "edited", "reordered"}))
    first = min((gone, added), key=lambda e: chain_order(e.chain))
    return f"{chain} #{seq} moved to {target} #{to}", first


def forge_checkpoint(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    seq = rng.choice(sorted(layout.checkpoints))
    where = (audit_checkpoint_table.c.chain == chain) & (audit_checkpoint_table.c.seq == seq)
    how = rng.choice(["hash", "at", "signature", "key id", "mallory", "moved", "foreign"])
    expect = Expect(chain, seq, SIGNATURES | REWRITTEN)
    if how == "hash":
        values: dict[str, Any] = {"hash": f"{rng.getrandbits(256):064x}"}
    elif how == "at":
        values = {"at": "2026-01-01T00:00:00.000000Z"}
    elif how == "signature":
        values = {"signature": f"{rng.getrandbits(256):064x}"}
    elif how == "key id":  # signed with one of the auditor's keys, labelled as the other
        key = layout.checkpoints[seq]["key_id"]
        values = {"key_id": NEW_KEY.key_id if key == OLD_KEY.key_id else OLD_KEY.key_id}
    elif how == "mallory":
        row = layout.checkpoints[seq]
        values = {
            "key_id": MALLORY.key_id,
            "signature": MALLORY.sign(checkpoint_message(seq, row["hash"], row["at"], chain)),
        }
    elif how == "moved":  # to a position of the chain that has none
        free = [s for s in range(layout.first, layout.last + 1) if s not in layout.checkpoints]
        to = rng.choice(free)
        values = {"seq": to}
        expect = Expect(chain, to, SIGNATURES | REWRITTEN)
    else:  # a genuine checkpoint of another partition at the same position, in its place
        other = rng.choice([x for x in CHAINS if x != chain])
        genuine = base.chains[other].checkpoints
        at = seq if seq in genuine else rng.choice(sorted(genuine))
        c.execute(delete(audit_checkpoint_table).where(where))
        c.execute(
            insert(audit_checkpoint_table).values({**genuine[at], "chain": chain, "seq": seq})
        )
        return f"{chain} #{seq}: checkpoint {other} #{at} copied in", expect
    c.execute(update(audit_checkpoint_table).where(where).values(values))
    return f"{chain} checkpoint #{seq}: {how} forged", expect


def head_as_checkpoint(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """The head's genuine signature copied into a checkpoint row at the head's position."""
    chain, layout = _pick(rng, base)
    head = base.heads[chain]
    if layout.last in layout.checkpoints:
        c.execute(
            delete(audit_checkpoint_table).where(
                audit_checkpoint_table.c.chain == chain,
                audit_checkpoint_table.c.seq == layout.last,
            )
        )
    c.execute(
        insert(audit_checkpoint_table).values(
            chain=chain,
            seq=head["seq"],
            hash=head["hash"],
            at=head["at"],
            algorithm=head["algorithm"],
            key_id=head["key_id"],
            signature=head["signature"],
            reason="manual",
        )
    )
    return f"{chain} #{layout.last}: head signature as a checkpoint", Expect(
        chain, layout.last, SIGNATURES
    )


def forge_head(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain, layout = _pick(rng, base)
    head = base.heads[chain]
    how = rng.choice(["hash", "at", "signature", "unsigned", "key id", "mallory", "seq"])
    where = audit_head_table.c.chain == chain
    if how == "hash":
        values: dict[str, Any] = {"hash": f"{rng.getrandbits(256):064x}"}
    elif how == "at":
        values = {"at": "2026-01-01T00:00:00.000000Z"}
    elif how == "signature":
        values = {"signature": f"{rng.getrandbits(256):064x}"}
    elif how == "unsigned":
        values = {"signature": None, "key_id": None, "algorithm": None}
    elif how == "key id":
        values = {"key_id": OLD_KEY.key_id}  # the head is signed with the new key
    elif how == "mallory":
        values = {
            "key_id": MALLORY.key_id,
            "signature": MALLORY.sign(head_message(head["seq"], head["hash"], head["at"], chain)),
        }
    else:  # claims more events than there are: the missing ones are named
        values = {"seq": head["seq"] + rng.randint(1, 3)}
        c.execute(update(audit_head_table).where(where).values(values))
        return f"{chain} head: seq raised", Expect(chain, layout.last + 1, frozenset({"truncated"}))
    c.execute(update(audit_head_table).where(where).values(values))
    if how == "hash":  # the last event no longer matches the head (a position) before its signature
        return f"{chain} head: hash forged", Expect(chain, layout.last, REWRITTEN)
    return f"{chain} head: {how} forged", Expect(chain, None, SIGNATURES)


def forge_archive(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """The archive record edited or deleted, or a forged one standing for deleted events: the
    boundary no longer counts, so the events before the chain's first are named deleted."""
    chain, layout = _pick(rng, base, archived=True)
    record = layout.archive
    assert record is not None
    where = audit_archive_table.c.id == record["id"]
    how = rng.choice(
        ["first", "last", "hash", "at", "signature", "key id", "mallory", "deleted", "extended"]
    )
    values: dict[str, Any] = {}
    last = int(record["last_seq"])
    if how == "first":
        values = {"first_seq": rng.randint(2, last)}
    elif how == "last":
        values = {"last_seq": rng.choice([s for s in range(1, layout.first + 6) if s != last])}
    elif how == "hash":
        values = {"last_hash": f"{rng.getrandbits(256):064x}"}
    elif how == "at":
        values = {"at": "2026-01-01T00:00:00.000000Z"}
    elif how == "signature":
        values = {"signature": f"{rng.getrandbits(256):064x}"}
    elif how == "key id":
        values = {"key_id": NEW_KEY.key_id}  # archived with the old key
    elif how == "mallory":
        values = {"key_id": MALLORY.key_id, "signature": MALLORY.sign(b"anything")}
    elif how == "deleted":
        c.execute(delete(audit_archive_table).where(where))
        return f"{chain} archive record deleted", Expect(chain, 1, GAP)
    else:  # more events deleted, the record stretched over them (its signature cannot follow)
        upto = rng.randint(layout.first, layout.last - 1)
        c.execute(
            delete(audit_event_table).where(
                audit_event_table.c.chain == chain, audit_event_table.c.seq <= upto
            )
        )
        values = {"last_seq": upto, "last_hash": layout.rows[upto]["hash"]}
    c.execute(update(audit_archive_table).where(where).values(values))
    return f"{chain} archive record: {how} forged", Expect(chain, 1, GAP | SIGNATURES)


def forge_tree(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """A signed tree head edited (its list, root, time, signature or key), or every one deleted."""
    how = rng.choice(["heads", "root", "at", "signature", "mallory", "resigned", "all deleted"])
    if how == "all deleted":
        c.execute(delete(audit_tree_table))
        return "every tree head deleted", Expect(
            CHAINS[1], None, frozenset({"unregistered partition"})
        )
    tree = rng.choice(base.trees)
    where = audit_tree_table.c.id == tree["id"]
    values: dict[str, Any]
    if how == "heads":
        values = {"heads": tree["heads"].replace(",", ",1", 1)}  # a position moved on
    elif how == "root":
        values = {"root": f"{rng.getrandbits(256):064x}"}
    elif how == "at":
        values = {"at": "2026-01-01T00:00:00.000000Z"}
    elif how == "signature":
        values = {"signature": f"{rng.getrandbits(256):064x}"}
    elif how == "mallory":
        values = {
            "key_id": MALLORY.key_id,
            "signature": MALLORY.sign(tree_message(tree["root"], tree["at"])),
        }
    else:  # a new list with a consistent root, but the auditor's key never signed it
        from airflow_wfe.core.audit.partitions import PartitionHead, heads_text, tree_root

        heads = [PartitionHead(ch, s + 1, h) for ch, s, h in parse_heads(tree["heads"])]
        values = {"heads": heads_text(heads), "root": tree_root(heads)}
    c.execute(update(audit_tree_table).where(where).values(values))
    kinds = EDITED | SIGNATURES
    return f"tree head {tree['id']}: {how} forged", Expect(MAIN, None, kinds)


def drop_partition(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    chain = rng.choice(CHAINS[1:])
    for table in TABLES[:4]:
        c.execute(delete(table).where(table.c.chain == chain))
    return f"partition {chain} deleted", Expect(chain, None, frozenset({"partition missing"}))


def swap_partitions(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """Two partitions' rows swapped (events, checkpoints, heads, archive records)."""
    one, two = sorted(rng.sample(CHAINS, 2), key=chain_order)
    for table in TABLES[:4]:
        for old, new in ((one, "swap"), (two, one), ("swap", two)):
            c.execute(update(table).where(table.c.chain == old).values(chain=new))
    # The first chain's history starts at its first stored event (or its archive record).
    layout = base.chains[two]
    first = 1 if layout.archive else layout.first
    return f"partitions {one} <-> {two}", Expect(one, first, frozenset({"broken link", "deleted"}))


def swap_key(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """The attacker re-signs every mark with a key of her own after an edit: nothing verifies
    with the auditor's keys (the tree heads, checked first, say so)."""
    chain, layout = _pick(rng, base)
    seq = rng.randint(layout.first, layout.last)
    row = layout.rows[seq]
    forged = _resealed(row, seq=seq, prev=row["prev_hash"], actor="user:mallory")
    c.execute(update(audit_event_table).where(_event_where(chain, seq)).values(forged))
    for head in base.heads.values():
        message = head_message(head["seq"], head["hash"], head["at"], head["chain"])
        c.execute(
            update(audit_head_table)
            .where(audit_head_table.c.chain == head["chain"])
            .values(key_id=MALLORY.key_id, signature=MALLORY.sign(message))
        )
    for x, lay in base.chains.items():
        for s, cp in lay.checkpoints.items():
            c.execute(
                update(audit_checkpoint_table)
                .where(audit_checkpoint_table.c.chain == x, audit_checkpoint_table.c.seq == s)
                .values(
                    key_id=MALLORY.key_id,
                    signature=MALLORY.sign(checkpoint_message(s, cp["hash"], cp["at"], x)),
                )
            )
    for tree in base.trees:
        c.execute(
            update(audit_tree_table)
            .where(audit_tree_table.c.id == tree["id"])
            .values(
                key_id=MALLORY.key_id,
                signature=MALLORY.sign(tree_message(tree["root"], tree["at"])),
            )
        )
    return f"{chain} #{seq} resealed, every mark re-signed by mallory", Expect(
        MAIN, None, frozenset({"unknown key"})
    )


def _gone(base: Base, last: dict[str, int]) -> tuple[str, int]:
    """The last position of the latest anchor that a store ending at ``last`` no longer holds."""
    return [(ch, s) for ch, s in base.anchored if s > last.get(ch, 0)][-1]


def rollback(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """The whole store restored from a copy taken before the last anchor (a consistent, signed
    older state: only the anchors can tell), or one partition rolled back (the tree heads tell)."""
    if rng.random() < 0.5:
        _restore(c, base.snapshot)
        last = {
            ch: max(int(r["seq"]) for r in base.snapshot[audit_event_table] if r["chain"] == ch)
            for ch in CHAINS
        }
        chain, seq = _gone(base, last)
        return "store rolled back to its copy", Expect(
            chain, seq, frozenset({"truncated"}), "anchors"
        )
    grown = [
        ch
        for ch in CHAINS
        if base.chains[ch].last
        > max(int(r["seq"]) for r in base.snapshot[audit_event_table] if r["chain"] == ch)
    ]
    chain = rng.choice(grown)
    for table in TABLES[:4]:
        c.execute(delete(table).where(table.c.chain == chain))
        rows = [r for r in base.snapshot[table] if r["chain"] == chain]
        if rows:
            c.execute(insert(table), rows)
    old_last = max(int(r["seq"]) for r in base.snapshot[audit_event_table] if r["chain"] == chain)
    return f"partition {chain} rolled back to its copy", Expect(
        chain, old_last + 1, frozenset({"truncated"})
    )


def erase(rng: random.Random, base: Base, c: Connection) -> tuple[str, Expect]:
    """Everything deleted; an honest-looking empty head row left (the anchors tell), or none."""
    for table in TABLES:
        c.execute(delete(table))
    if rng.random() < 0.5:
        return "store erased, no head row", Expect(MAIN, None, frozenset({"head missing"}))
    c.execute(
        insert(audit_head_table).values(
            chain=MAIN, seq=0, hash=genesis_hash(MAIN), at="2026-01-01T00:00:00.000000Z"
        )
    )
    chain, seq = _gone(base, {})
    return "store erased, empty head row", Expect(chain, seq, frozenset({"erased"}), "anchors")


#: Each attack with its weight (cheap single-row edits most often).
ATTACKS: Final[list[tuple[Attack, int]]] = [
    (edit_column, 12),
    (edit_body, 12),
    (edit_hash, 8),
    (reseal_one, 8),
    (rewrite_tail, 6),
    (delete_events, 10),
    (cut_tail, 6),
    (append_unchained, 4),
    (insert_event, 6),
    (swap_events, 6),
    (move_event, 3),
    (forge_checkpoint, 6),
    (head_as_checkpoint, 2),
    (forge_head, 5),
    (forge_archive, 5),
    (forge_tree, 4),
    (drop_partition, 1),
    (swap_partitions, 2),
    (swap_key, 1),
    (rollback, 2),
    (erase, 1),
]


# -- the trials ----------------------------------------------------------------------------------


@dataclass
class Tally:
    trials: int = 0
    by_attack: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _check(expect: Expect, trail: VerifyReport, anchored: VerifyReport) -> str | None:
    """Why the verification's answer is wrong for ``expect`` (``None``: it is right)."""
    if trail.ok and anchored.ok:
        return "MISSED: trail and anchors verify"
    report = trail if expect.by == "trail" else anchored
    if report.ok:
        return f"the {expect.by} verify, expected {expect}"
    first = report.findings[0]
    if not expect.matches(first):
        return (
            f"first finding {first.chain} {first.seq} {first.kind!r} ({first}), expected {expect}"
        )
    return None


def run_trials(url: str, base: Base, trials: int, seed: int, tally: Tally) -> None:
    from airflow_wfe.store.engine import get_engine

    engine = get_engine(url)
    rng = random.Random(seed)
    attacks = [a for a, _w in ATTACKS]
    weights = [w for _a, w in ATTACKS]
    with engine.connect() as connection:
        for number in range(trials):
            # Every attack once first (a small sample still covers each), then by weight.
            attack = attacks[number] if number < len(attacks) else rng.choices(attacks, weights)[0]
            transaction = connection.begin()
            try:
                what, expect = attack(rng, base, connection)
                trail = verify_trail(connection, KEYS)
                # The anchors are compared only when they must tell (the trail is the cheap
                # part: a store rolled back as a whole verifies on its own).
                anchored = VerifyReport()
                if trail.ok or expect.by == "anchors":
                    anchored = verify_anchors(connection, base.anchors, KEYS)
            finally:
                transaction.rollback()
            tally.trials += 1
            tally.by_attack[attack.__name__] = tally.by_attack.get(attack.__name__, 0) + 1
            wrong = _check(expect, trail, anchored)
            if wrong:
                tally.failures.append(
                    f"seed {seed} trial {number} {attack.__name__}: {what}: {wrong}"
                )


def _assert_all_named(tally: Tally, trials: int) -> None:
    assert tally.trials == trials
    assert set(tally.by_attack) == {a.__name__ for a, _w in ATTACKS}, tally.by_attack
    assert not tally.failures, (
        f"{len(tally.failures)} of {tally.trials} attacks missed or misnamed:\n"
        + "\n".join(tally.failures[:25])
    )


@pytest.mark.slow
def test_ten_thousand_attacks_are_each_detected_and_named_at_the_first_bad_entry(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/wfe.db"
    base = build_base(url, tmp_path / "anchors", tmp_path / "archive")
    assert sum(layout.last - layout.first + 1 for layout in base.chains.values()) >= 200
    tally = Tally()
    run_trials(url, base, SQLITE_TRIALS, SEED, tally)
    _assert_all_named(tally, SQLITE_TRIALS)
    # The base itself still verifies: every trial was rolled back.
    assert SqlStore(url).verify_audit(KEYS).ok


@pytest.mark.slow
@pytest.mark.postgres
def test_attacks_on_postgresql_are_each_detected_and_named(pg_url: str, tmp_path: Path) -> None:
    base = build_base(pg_url, tmp_path / "anchors", tmp_path / "archive")
    tally = Tally()
    run_trials(pg_url, base, POSTGRES_TRIALS, SEED + 1, tally)
    _assert_all_named(tally, POSTGRES_TRIALS)


@pytest.mark.slow
def test_attacks_committed_to_a_copy_fail_the_public_read_only_verification(
    tmp_path: Path,
) -> None:
    """The same attacks through what ``wfe audit verify`` runs: committed into a file copy of
    the store, verified by ``SqlStore.verify_audit`` (and ``verify_audit_anchors``) read-only."""
    url = f"sqlite:///{tmp_path}/wfe.db"
    anchor_dir = tmp_path / "anchors"
    base = build_base(url, anchor_dir, tmp_path / "archive")
    dispose_engines()  # the WAL checkpointed into the file: a plain copy is the whole store
    rng = random.Random(SEED + 2)
    attacks = [a for a, _w in ATTACKS]
    failures = []
    for number in range(PUBLIC_TRIALS):
        attack = attacks[number % len(attacks)]
        copy = tmp_path / f"copy-{number}.db"
        shutil.copyfile(tmp_path / "wfe.db", copy)
        copy_url = f"sqlite:///{copy}"
        store = SqlStore(copy_url)
        with store._engine.begin() as connection:
            what, expect = attack(rng, base, connection)
        dispose_engines()
        trail = store.verify_audit(KEYS)
        anchored = store.verify_audit_anchors(anchor_dir, KEYS)
        wrong = _check(expect, trail, anchored)
        if wrong:
            failures.append(f"trial {number} {attack.__name__}: {what}: {wrong}")
        copy.unlink()
    assert not failures, "\n".join(failures)


def test_edits_of_an_archive_file_are_named_at_the_first_bad_line(tmp_path: Path) -> None:
    """The archive files (``wfe audit verify --archive FILE``): a line edited, deleted, two
    swapped, the file cut short or its closing signed mark forged, each named where it is."""
    url = f"sqlite:///{tmp_path}/wfe.db"
    build_base(url, tmp_path / "anchors", tmp_path / "archive")
    store = SqlStore(url)
    files = sorted((tmp_path / "archive").glob("*.jsonl"))
    assert len(files) == len(CHAINS) - 1
    rng = random.Random(SEED + 3)
    failures = []
    for number in range(60):
        path = rng.choice(files)
        lines = path.read_text().splitlines()
        events = [json.loads(line) for line in lines[1:-1]]
        index = rng.randrange(len(events))
        seq = events[index]["seq"]
        how = rng.choice(["body", "hash", "deleted", "swapped", "cut", "mark"])
        if how == "body":
            body = events[index]["body"]
            at = rng.randrange(len(body))
            events[index]["body"] = body[:at] + ("1" if body[at] != "1" else "2") + body[at + 1 :]
            expect = (seq, "edited")
        elif how == "hash":
            events[index]["hash"] = f"{rng.getrandbits(256):064x}"
            expect = (seq, "edited")
        elif how == "deleted" and index < len(events) - 1:
            del events[index]
            expect = (seq, "deleted")
        elif how == "swapped" and index < len(events) - 1:
            events[index], events[index + 1] = events[index + 1], events[index]
            expect = (seq, "reordered")
        elif how in ("cut", "deleted", "swapped"):  # the last events gone (the mark covers them)
            events = events[:index]
            expect = (seq, "truncated")
        else:
            mark = json.loads(lines[-1])
            mark["checkpoint"]["hash"] = events[index]["hash"]
            mark["checkpoint"]["seq"] = seq
            lines[-1] = json.dumps(mark)
            expect = (seq, "bad signature")
        forged = tmp_path / f"forged-{number}.jsonl"
        forged.write_text("\n".join([lines[0], *map(json.dumps, events), lines[-1]]) + "\n")
        report = store.verify_audit_archive(forged, KEYS)
        first = report.findings[0] if report.findings else None
        if first is None or (first.seq, first.kind) != expect:
            failures.append(f"trial {number} {path.name} #{seq} {how}: {first}, expected {expect}")
        forged.unlink()
    assert not failures, "\n".join(failures)
