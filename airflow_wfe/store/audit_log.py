"""The audit trail in the store: appending inside the caller's transaction, and reading it back.

Appending is always part of a bigger transaction (the state change the events describe), so the two
commit or roll back together: no state change without its event, no event without its change. The
chain head row is locked for the append, which makes concurrent writers take turns (SQLite's
``BEGIN IMMEDIATE`` already does; on PostgreSQL it is the row lock) and keeps one unforked chain. The
head is always the *last* lock a transaction takes, so it never waits for a run row while holding it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Select, insert, select, update

from airflow_wfe.audit.canonical import format_time
from airflow_wfe.audit.events import GENESIS_HASH, AuditEvent, SealedEvent, seal
from airflow_wfe.audit.redact import Redactor
from airflow_wfe.audit.signing import Signer, checkpoint_message
from airflow_wfe.audit.verify import Checkpoint, Head
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
)

__all__ = ["CHAIN", "DEFAULT_CHECKPOINT_EVERY", "AuditLog", "ChainConflict", "event_query"]

CHAIN: Final = "main"
DEFAULT_CHECKPOINT_EVERY: Final = 1000


class ChainConflict(Exception):
    """The head moved between our read and our write; the store retries the whole transaction."""


def event_query(
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    since: str | None = None,
    types: Sequence[str] | None = None,
) -> Select[Any]:
    """Stored events in chain order, filtered (``since`` is a formatted UTC time)."""
    query = select(audit_event_table).order_by(audit_event_table.c.seq)
    if dag_id is not None:
        query = query.where(audit_event_table.c.dag_id == dag_id)
    if run_id is not None:
        query = query.where(audit_event_table.c.run_id == run_id)
    if since is not None:
        query = query.where(audit_event_table.c.at >= since)
    if types:
        query = query.where(audit_event_table.c.type.in_(list(types)))
    return query


class AuditLog:
    """Seals events into the chain and signs the head.

    Args:
        signer: signs the head after each append and the periodic checkpoints; ``None`` leaves them
            unsigned (unit tests; a verification with a key then reports it).
        redactor: hides secrets in payloads before anything is hashed or written.
        checkpoint_every: a signed checkpoint every this many events (0: none).
        on_written: told how many events each append wrote (the metrics counter).
    """

    def __init__(
        self,
        *,
        signer: Signer | None = None,
        redactor: Redactor | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.signer = signer
        self.redactor = redactor or Redactor()
        self.checkpoint_every = checkpoint_every
        self.on_written = on_written

    # -- writing -----------------------------------------------------------------------------

    def append(self, connection: Connection, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        """Seal ``events`` after the current head and write them in ``connection``'s transaction."""
        if not events:
            return []
        head = self._lock_head(connection)
        seq, prev = head
        sealed: list[SealedEvent] = []
        for event in events:
            seq += 1
            record = seal(self._redacted(event), seq, prev)
            sealed.append(record)
            prev = record.hash
        connection.execute(
            insert(audit_event_table),
            [
                {
                    "seq": e.seq,
                    "at": e.at,
                    "type": e.type,
                    "actor": e.actor,
                    "dag_id": e.dag_id,
                    "run_id": e.run_id,
                    "step_id": e.step_id,
                    "body": e.body,
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in sealed
            ],
        )
        if self.signer is not None and self.checkpoint_every > 0:
            due = [e for e in sealed if e.seq % self.checkpoint_every == 0]
            if due:
                connection.execute(
                    insert(audit_checkpoint_table),
                    [self._checkpoint_row(e.seq, e.hash, e.at, "periodic") for e in due],
                )
        last = sealed[-1]
        self._move_head(connection, head[0], last.seq, last.hash, last.at)
        if self.on_written is not None:
            self.on_written(len(sealed))
        return sealed

    def _redacted(self, event: AuditEvent) -> AuditEvent:
        return dataclasses.replace(
            event,
            payload=self.redactor(dict(event.payload)),
            versions=self.redactor(dict(event.versions)),
        )

    @staticmethod
    def _lock_head(connection: Connection) -> tuple[int, str]:
        row = connection.execute(
            select(audit_head_table.c.seq, audit_head_table.c.hash)
            .where(audit_head_table.c.chain == CHAIN)
            .with_for_update()
        ).first()
        if row is None:
            # Only a store created without its migration lacks the genesis head; an insert race
            # is an IntegrityError, which the store retries.
            connection.execute(
                insert(audit_head_table).values(chain=CHAIN, seq=0, hash=GENESIS_HASH, at="")
            )
            return 0, GENESIS_HASH
        return int(row.seq), str(row.hash)

    def _move_head(
        self, connection: Connection, old_seq: int, seq: int, hash_: str, at: str
    ) -> None:
        signature = algorithm = key_id = None
        if self.signer is not None:
            signature = self.signer.sign(checkpoint_message(seq, hash_, at))
            algorithm, key_id = self.signer.algorithm, self.signer.key_id
        result = connection.execute(
            update(audit_head_table)
            .where(audit_head_table.c.chain == CHAIN, audit_head_table.c.seq == old_seq)
            .values(
                seq=seq,
                hash=hash_,
                at=at,
                signature=signature,
                algorithm=algorithm,
                key_id=key_id,
            )
        )
        if result.rowcount != 1:
            raise ChainConflict

    def _checkpoint_row(self, seq: int, hash_: str, at: str, reason: str) -> dict[str, Any]:
        assert self.signer is not None
        return {
            "seq": seq,
            "hash": hash_,
            "at": at,
            "algorithm": self.signer.algorithm,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(checkpoint_message(seq, hash_, at)),
            "reason": reason,
        }

    def checkpoint(self, connection: Connection, reason: str = "manual") -> Checkpoint | None:
        """Sign a checkpoint at the current head (``None`` for an empty chain or no signer)."""
        if self.signer is None:
            return None
        seq, hash_ = self._lock_head(connection)
        if seq == 0:
            return None
        at = connection.execute(
            select(audit_event_table.c.at).where(audit_event_table.c.seq == seq)
        ).scalar_one()
        existing = connection.execute(
            select(audit_checkpoint_table).where(audit_checkpoint_table.c.seq == seq)
        ).first()
        if existing is None:
            connection.execute(
                insert(audit_checkpoint_table).values(self._checkpoint_row(seq, hash_, at, reason))
            )
        return _checkpoint(
            existing
            or connection.execute(
                select(audit_checkpoint_table).where(audit_checkpoint_table.c.seq == seq)
            ).one()
        )

    # -- reading -----------------------------------------------------------------------------

    @staticmethod
    def head(connection: Connection) -> Head | None:
        row = connection.execute(
            select(audit_head_table).where(audit_head_table.c.chain == CHAIN)
        ).first()
        if row is None:
            return None
        return Head(
            seq=int(row.seq),
            hash=row.hash,
            at=row.at,
            algorithm=row.algorithm,
            key_id=row.key_id,
            signature=row.signature,
        )

    @staticmethod
    def checkpoints(connection: Connection, *, from_seq: int = 0) -> dict[int, Checkpoint]:
        rows = connection.execute(
            select(audit_checkpoint_table).where(audit_checkpoint_table.c.seq >= from_seq)
        )
        return {int(row.seq): _checkpoint(row) for row in rows}

    @staticmethod
    def archive_anchor(connection: Connection) -> tuple[int, str, Checkpoint | None]:
        """Where the chain in the database starts: after the last archive, else at #1."""
        row = connection.execute(
            select(audit_archive_table).order_by(audit_archive_table.c.last_seq.desc()).limit(1)
        ).first()
        if row is None:
            return 1, GENESIS_HASH, None
        mark = None
        if row.signature is not None:
            mark = Checkpoint(
                seq=int(row.last_seq),
                hash=row.last_hash,
                at=row.at,
                algorithm=row.algorithm,
                key_id=row.key_id,
                signature=row.signature,
            )
        return int(row.last_seq) + 1, row.last_hash, mark

    @staticmethod
    def stream(connection: Connection, query: Select[Any]) -> Iterator[Any]:
        """Rows of ``query`` fetched in batches (constant memory on any backend)."""
        result = connection.execution_options(stream_results=True, yield_per=2000).execute(query)
        yield from result

    @staticmethod
    def since_time(value: Any) -> str:
        """A datetime as the text ``at`` is compared with."""
        return format_time(value)


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        seq=int(row.seq),
        hash=row.hash,
        at=row.at,
        algorithm=row.algorithm,
        key_id=row.key_id,
        signature=row.signature,
    )
