"""The audit trail in the store: appending inside the caller's transaction, and reading it back.

Appending is always part of a bigger transaction (the state change the events describe), so the two
commit or roll back together: no state change without its event, no event without its change. The
chain head row is locked for the append, which makes concurrent writers take turns (SQLite's
``BEGIN IMMEDIATE`` already does; on PostgreSQL it is the row lock) and keeps one unforked chain. The
head is always the *last* lock a transaction takes, so it never waits for a run row while holding it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Select, func, insert, select

from airflow_wfe.core.audit.events import (
    BODY_VERSION,
    GENESIS_HASH,
    AuditEvent,
    SealedEvent,
    draft,
    seal,
    seal_draft,
)
from airflow_wfe.core.audit.redact import Redactor
from airflow_wfe.core.audit.signing import (
    GeneratedKey,
    Keyring,
    Signer,
    checkpoint_message,
    head_message,
)
from airflow_wfe.core.audit.verify import ROW_COLUMNS, Checkpoint, Head
from airflow_wfe.exceptions import AuditError
from airflow_wfe.store.audit_sql import CHAIN, EVENT_COLUMNS, HEAD_COLUMNS, DriverSql, driver_sql
from airflow_wfe.store.rows import checkpoint as _checkpoint
from airflow_wfe.store.rows import head as _head
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
)

__all__ = [
    "CHAIN",
    "DEFAULT_CHECKPOINT_EVERY",
    "AuditLog",
    "ChainConflict",
    "event_query",
    "resolve_signer",
]

DEFAULT_CHECKPOINT_EVERY: Final = 1000


def _archive_mark(row: Any) -> Checkpoint:
    mark = _checkpoint(row, seq="last_seq", hash_="last_hash")
    return Checkpoint(**{**mark.__dict__, "first_seq": int(row.first_seq)})


def resolve_signer(signer: Signer, connection: Connection) -> Signer:
    """``signer``, with the embedded default key resolved for this store (see
    :class:`~airflow_wfe.core.audit.signing.GeneratedKey`); for signing outside an append."""
    if not isinstance(signer, GeneratedKey):
        return signer
    row = connection.execute(
        select(audit_head_table.c.seq, audit_head_table.c.key_id).where(
            audit_head_table.c.chain == CHAIN
        )
    ).first()
    seq = 0 if row is None else int(row.seq)
    return signer.for_store(
        connection.dialect.name, trail_empty=seq == 0, head_key=None if row is None else row.key_id
    )


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
        body_version: layout of the bodies written (1 only to build old-style chains in tests).
        anchor_dir: where a periodic checkpoint also writes a signed anchor (see
            :mod:`airflow_wfe.core.audit.anchors`) of the *previous* checkpoint, which is committed
            (an anchor of a position that then rolled back would be a false alarm); ``wfe audit
            anchor`` on a schedule covers the events after it.
    """

    def __init__(
        self,
        *,
        signer: Signer | None = None,
        redactor: Redactor | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        on_written: Callable[[int], None] | None = None,
        body_version: int = BODY_VERSION,
        anchor_dir: Path | None = None,
    ) -> None:
        self.signer = signer
        #: The embedded default key, until the first append has seen which store it signs.
        self._pending_key = signer if isinstance(signer, GeneratedKey) else None
        self.redactor = redactor or Redactor()
        self.checkpoint_every = checkpoint_every
        self.on_written = on_written
        self.body_version = body_version
        self.anchor_dir = anchor_dir

    # -- writing -----------------------------------------------------------------------------

    def append(self, connection: Connection, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        """Seal ``events`` after the current head and write them in ``connection``'s transaction."""
        if not events:
            return []
        # Everything that does not need the chain's position is done before the head is locked.
        redact = self.redactor
        drafts = [draft(e, redact(e.payload), redact(e.versions)) for e in events]
        sql = driver_sql(connection)
        cursor = connection.connection.cursor()
        try:
            head = self._lock_head_raw(cursor, sql)
            if head is None:
                head = self._lock_head(connection)
            seq, prev = head
            if self._pending_key is not None:
                self._resolve_key(connection, seq)
            sealed: list[SealedEvent] = []
            for item, event in zip(drafts, events, strict=True):
                seq += 1
                if self.body_version == BODY_VERSION:
                    record = seal_draft(item, seq, prev)
                else:
                    record = seal(self._redacted(event), seq, prev, version=self.body_version)
                sealed.append(record)
                prev = record.hash
            due: list[SealedEvent] = []
            if self.signer is not None and self.checkpoint_every > 0:
                due = [e for e in sealed if e.seq % self.checkpoint_every == 0]
            last = sealed[-1]
            if due and self.anchor_dir is not None:
                self._anchor_previous_checkpoint(connection, due[0].seq)
            self._write(connection, cursor, sql, sealed, due, head[0], last)
        finally:
            cursor.close()
        if self.on_written is not None:
            self.on_written(len(sealed))
        return sealed

    def _write(
        self,
        connection: Connection,
        cursor: Any,
        sql: DriverSql,
        sealed: list[SealedEvent],
        due: list[SealedEvent],
        old_seq: int,
        last: SealedEvent,
    ) -> None:
        """Insert the sealed events, their due checkpoints, and move the signed head."""
        rows = [
            (
                e.seq,
                e.at,
                e.type,
                e.actor,
                e.dag_id,
                e.run_id,
                e.step_id,
                e.body,
                e.prev_hash,
                e.hash,
            )
            for e in sealed
        ]
        head_values = self._head_values(last.seq, last.hash, last.at)
        if sql.insert_and_move is not None and len(rows) == 1 and not due:
            # One round trip for the insert and the head's move (the one event *is* the new head,
            # so the named parameters the two share, seq/hash/at, have the same values).
            if sql.named:
                params: Any = dict(zip(EVENT_COLUMNS, rows[0], strict=True))
                params.update(zip(HEAD_COLUMNS, head_values, strict=True))
                params.update(chain=CHAIN, old_seq=old_seq)
            else:
                params = (*rows[0], *head_values, CHAIN, old_seq)
            cursor.execute(sql.insert_and_move, params)
            if cursor.rowcount != 1:
                raise ChainConflict
            return
        if sql.named:
            named = [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows]
            if len(named) == 1:
                cursor.execute(sql.insert_event, named[0])
            else:
                cursor.executemany(sql.insert_event, named)
        elif len(rows) == 1:
            cursor.execute(sql.insert_event, rows[0])
        else:
            cursor.executemany(sql.insert_event, rows)
        if due:
            connection.execute(
                insert(audit_checkpoint_table),
                [self._checkpoint_row(e.seq, e.hash, e.at, "periodic") for e in due],
            )
        self._move_head(cursor, sql, old_seq, head_values)

    def _resolve_key(self, connection: Connection, head_seq: int) -> None:
        """Turn the embedded default key into a real one, under the chain's lock: created only for
        an empty trail in a SQLite store (see :class:`~airflow_wfe.core.audit.signing.GeneratedKey`).
        """
        pending = self._pending_key
        assert pending is not None
        key_id = None
        if head_seq > 0:
            key_id = connection.execute(
                select(audit_head_table.c.key_id).where(audit_head_table.c.chain == CHAIN)
            ).scalar()
        self.signer = pending.for_store(
            connection.dialect.name, trail_empty=head_seq == 0, head_key=key_id
        )
        self._pending_key = None

    def ready_signer(self, connection: Connection) -> Signer | None:
        """The signer, the embedded default resolved (for checkpoints and archives, which sign
        outside an append)."""
        if self._pending_key is not None:
            seq, _hash = self._lock_head(connection)
            self._resolve_key(connection, seq)
        return self.signer

    def _anchor_previous_checkpoint(self, connection: Connection, before: int) -> None:
        """Anchor the latest committed checkpoint before ``before``, if its signature holds (an
        anchor must never sign what someone slipped into the checkpoint table). Only every
        ``checkpoint_every`` events, never on the per-transition path."""
        from airflow_wfe.store.audit_anchor import write_anchor

        assert self.signer is not None
        assert self.anchor_dir is not None
        row = connection.execute(
            select(audit_checkpoint_table)
            .where(audit_checkpoint_table.c.seq < before)
            .order_by(audit_checkpoint_table.c.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return
        mark = _checkpoint(row)
        if Keyring([self.signer]).check(
            mark.key_id, checkpoint_message(mark.seq, mark.hash, mark.at), mark.signature
        ):
            return
        write_anchor(self.anchor_dir, self.signer, mark.seq, mark.hash, mark.at)

    def _redacted(self, event: AuditEvent) -> AuditEvent:
        return AuditEvent(
            type=event.type,
            actor=event.actor,
            at=event.at,
            dag_id=event.dag_id,
            run_id=event.run_id,
            step_id=event.step_id,
            map_index=event.map_index,
            payload=self.redactor(dict(event.payload)),
            versions=self.redactor(dict(event.versions)),
        )

    @staticmethod
    def _lock_head_raw(cursor: Any, sql: DriverSql) -> tuple[int, str] | None:
        cursor.execute(sql.lock_head, {"chain": CHAIN} if sql.named else (CHAIN,))
        row = cursor.fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    @staticmethod
    def _lock_head(connection: Connection) -> tuple[int, str]:
        row = connection.execute(
            select(audit_head_table.c.seq, audit_head_table.c.hash)
            .where(audit_head_table.c.chain == CHAIN)
            .with_for_update()
        ).first()
        if row is None:
            # The migration creates the genesis head. A store without it but with events (or
            # archives) had its head deleted: starting a new chain at #1 would collide with the
            # events there (an IntegrityError on every write) and bless whatever the tail now is.
            last = connection.execute(select(func.max(audit_event_table.c.seq))).scalar()
            archived = connection.execute(select(func.max(audit_archive_table.c.last_seq))).scalar()
            if last is not None or archived is not None:
                raise AuditError(
                    "audit trail",
                    "the chain head row (wfe_audit_head, chain 'main') is missing although the "
                    f"trail holds events up to #{last or archived}: the store was tampered with "
                    "or damaged, and nothing more is recorded until it is repaired. Run `wfe audit "
                    "verify` (with --anchors), then restore the store or its head from a backup",
                )
            # An insert race is an IntegrityError, which the store retries.
            connection.execute(
                insert(audit_head_table).values(chain=CHAIN, seq=0, hash=GENESIS_HASH, at="")
            )
            return 0, GENESIS_HASH
        return int(row.seq), str(row.hash)

    def _head_values(self, seq: int, hash_: str, at: str) -> tuple[Any, ...]:
        """The head's new columns (``HEAD_COLUMNS``), signed."""
        signature = algorithm = key_id = None
        if self.signer is not None:
            signature = self.signer.sign(head_message(seq, hash_, at))
            algorithm, key_id = self.signer.algorithm, self.signer.key_id
        return (seq, hash_, at, signature, algorithm, key_id)

    @staticmethod
    def _move_head(cursor: Any, sql: DriverSql, old_seq: int, values: tuple[Any, ...]) -> None:
        if sql.named:
            params: Any = dict(zip(HEAD_COLUMNS, values, strict=True))
            params.update(chain=CHAIN, old_seq=old_seq)
        else:
            params = (*values, CHAIN, old_seq)
        cursor.execute(sql.move_head, params)
        if cursor.rowcount != 1:
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
        if self.ready_signer(connection) is None:
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
        return None if row is None else _head(row)

    @staticmethod
    def checkpoints(connection: Connection, *, from_seq: int = 0) -> dict[int, Checkpoint]:
        rows = connection.execute(
            select(audit_checkpoint_table).where(audit_checkpoint_table.c.seq >= from_seq)
        )
        return {int(row.seq): _checkpoint(row) for row in rows}

    @staticmethod
    def archive_anchor(connection: Connection) -> tuple[int, str, Checkpoint | None]:
        """Where the chain in the database starts: after the last archive, else at #1 (with that
        archive's record as a mark; whether its signature holds is verification's business)."""
        row = connection.execute(
            select(audit_archive_table).order_by(audit_archive_table.c.last_seq.desc()).limit(1)
        ).first()
        if row is None:
            return 1, GENESIS_HASH, None
        return int(row.last_seq) + 1, row.last_hash, _archive_mark(row)

    @staticmethod
    def archives(connection: Connection) -> list[Checkpoint]:
        """Every archive record as a signed mark (``first_seq`` set), oldest first."""
        rows = connection.execute(
            select(audit_archive_table).order_by(audit_archive_table.c.last_seq)
        )
        return [_archive_mark(row) for row in rows]

    @staticmethod
    def stream_rows(
        connection: Connection, *, since: str | None = None, batch: int = 1000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every event in chain order (from ``since``, a formatted UTC time) as batches of plain
        DBAPI tuples of :data:`~airflow_wfe.core.audit.verify.ROW_COLUMNS`: what verification reads,
        without building a SQLAlchemy row per event. Memory is one batch on any backend (a
        server-side cursor on PostgreSQL), in the connection's current transaction.
        """
        dialect = connection.dialect
        mark = {"qmark": "?", "format": "%s", "numeric": ":1", "named": ":since"}.get(
            dialect.paramstyle, "%(since)s"
        )
        where = "" if since is None else f" WHERE at >= {mark}"
        sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM {audit_event_table.name}{where} ORDER BY seq"
        params: Any = ()
        if since is not None:
            params = {"since": since} if dialect.paramstyle in ("named", "pyformat") else (since,)
        # A transaction must be open (a reader's snapshot, and PostgreSQL's named cursors need one).
        if not connection.in_transaction():
            connection.begin()
        raw = connection.connection
        if dialect.name == "postgresql":
            cursor = raw.dbapi_connection.cursor(name="wfe_audit_rows")  # type: ignore[union-attr]
        else:
            cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            while True:
                rows = cursor.fetchmany(batch)
                if not rows:
                    return
                yield list(rows)
        finally:
            cursor.close()

    @staticmethod
    def stream(connection: Connection, query: Select[Any]) -> Iterator[Any]:
        """Rows of ``query`` fetched in batches (constant memory on any backend)."""
        result = connection.execution_options(stream_results=True, yield_per=2000).execute(query)
        yield from result
