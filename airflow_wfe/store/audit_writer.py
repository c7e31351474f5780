"""The audit trail in the store: appending inside the caller's transaction, and reading it back.

Appending is always part of a bigger transaction (the state change the events describe), so the two
commit or roll back together: no state change without its event, no event without its change. The
chain head row is locked for the append, which makes concurrent writers take turns (SQLite's
``BEGIN IMMEDIATE`` already does; on PostgreSQL it is the row lock) and keeps one unforked chain. The
head is always the *last* lock a transaction takes, so it never waits for a run row while holding it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Select, func, insert, select

from airflow_wfe.core.audit.canonical import format_time
from airflow_wfe.core.audit.events import (
    BODY_VERSION,
    AuditEvent,
    Draft,
    SealedEvent,
    draft,
    seal,
    seal_draft,
)
from airflow_wfe.core.audit.partitions import (
    PartitionHead,
    TreeHead,
    chain_order,
    genesis_hash,
    heads_text,
    parse_heads,
    partition_of,
    sorted_heads,
    tree_root,
)
from airflow_wfe.core.audit.redact import Redactor
from airflow_wfe.core.audit.signing import (
    GeneratedKey,
    Keyring,
    Signer,
    checkpoint_message,
    head_message,
    tree_message,
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
    audit_tree_table,
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
        select(audit_head_table.c.key_id).where(audit_head_table.c.seq > 0).limit(1)
    ).first()
    return signer.for_store(
        connection.dialect.name,
        trail_empty=row is None,
        head_key=None if row is None else row.key_id,
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
    query = select(audit_event_table).order_by(audit_event_table.c.chain, audit_event_table.c.seq)
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
            :mod:`airflow_wfe.core.audit.anchors`) of the *previous* tree head, which is committed
            (an anchor of a position that then rolled back would be a false alarm); ``wfe audit
            anchor`` on a schedule covers the events after it.
        partitions: how many chains events are spread over by DAG id (``[wfe] audit_partitions``;
            1: the one chain ``main``). See :mod:`airflow_wfe.core.audit.partitions`.
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
        partitions: int = 1,
    ) -> None:
        self.signer = signer
        self.partitions = max(1, partitions)
        #: Where this process last left each chain's head, per store: the optimistic append's
        #: guess (checked by the statement that moves the head, so a stale one only costs a read).
        self._known: dict[tuple[Any, str], tuple[int, str]] = {}
        #: The append's driver cursor per server connection (see :meth:`_cursor`).
        self._cursors: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        #: The embedded default key, until the first append has seen which store it signs.
        self._pending_key = signer if isinstance(signer, GeneratedKey) else None
        self.redactor = redactor or Redactor()
        self.checkpoint_every = checkpoint_every
        self.on_written = on_written
        self.body_version = body_version
        self.anchor_dir = anchor_dir

    # -- writing -----------------------------------------------------------------------------

    def append(self, connection: Connection, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        """Seal ``events`` after their partitions' heads and write them in ``connection``'s
        transaction (returned in the order given)."""
        if not events:
            return []
        # Everything that does not need the chain's position is done before the head is locked.
        redact = self.redactor
        drafts = [draft(e, redact(e.payload), redact(e.versions)) for e in events]
        groups = self._groups(drafts)
        sql = driver_sql(connection)
        cursor = self._cursor(connection)
        try:
            fast = None
            if len(drafts) == 1:
                fast = self._append_after_known_head(connection, cursor, sql, drafts[0], groups)
            if fast is not None:
                return self._written([fast])
            # Heads are locked in partition order, so writers needing several never deadlock.
            chains = sorted(groups, key=chain_order) if len(groups) > 1 else list(groups)
            heads = {}
            for chain in chains:
                head = self._lock_head_raw(cursor, sql, chain)
                heads[chain] = head if head is not None else self._lock_head(connection, chain)
            if self._pending_key is not None:
                self._resolve_key(connection)
            sealed: list[SealedEvent | None] = [None] * len(drafts)
            began = checkpointed = False
            for chain in chains:
                began = began or (heads[chain][0] == 0 and chain != CHAIN)
                chain_events = self._seal(chain, heads[chain], groups[chain], drafts, events)
                for index, record in zip(groups[chain], chain_events, strict=True):
                    sealed[index] = record
                due: list[SealedEvent] = []
                if self.signer is not None and self.checkpoint_every > 0:
                    due = [e for e in chain_events if e.seq % self.checkpoint_every == 0]
                if due and self.anchor_dir is not None:
                    self._anchor_previous(connection, chain, due[0].seq)
                self._write(connection, cursor, sql, chain, chain_events, due, heads[chain][0])
                self._known[(connection.engine, chain)] = (
                    chain_events[-1].seq,
                    chain_events[-1].hash,
                )
                checkpointed = checkpointed or bool(due)
            if (began or (checkpointed and self.partitions > 1)) and self.signer is not None:
                # A partition began (a tree head must name it from then on), or a checkpoint fell
                # in a partitioned store.
                self.write_tree(connection, "partition" if began else "periodic")
        finally:
            if sql.dialect == "sqlite":
                cursor.close()
        return self._written([e for e in sealed if e is not None])

    def _cursor(self, connection: Connection) -> Any:
        """A driver cursor for the append. A server driver's is kept per driver connection (a
        psycopg cursor cost ~7 us to create, more than sealing the event); SQLite's cost nothing
        and are closed after each append (an open one may hold a statement)."""
        dbapi_connection = connection.connection.dbapi_connection
        if connection.dialect.name == "sqlite":
            return dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor = self._cursors.get(dbapi_connection)
        if cursor is None or getattr(cursor, "closed", False):
            cursor = self._cursors[dbapi_connection] = dbapi_connection.cursor()  # type: ignore[union-attr]
        return cursor

    def _written(self, sealed: list[SealedEvent]) -> list[SealedEvent]:
        if self.on_written is not None:
            self.on_written(len(sealed))
        return sealed

    def _append_after_known_head(
        self,
        connection: Connection,
        cursor: Any,
        sql: DriverSql,
        item: Draft,
        groups: dict[str, list[int]],
    ) -> SealedEvent | None:
        """Append one event after the head as this process last left it, without reading the head
        first: the head moves only if it is still there (same position and hash), and only then is
        the event inserted. ``None`` (nothing written) when it moved, when nothing is known yet, or
        when the append has more to do than one insert (a checkpoint, a partition's start, the
        embedded key to resolve, an old body layout): the caller then takes the locked path."""
        chain = next(iter(groups))
        known = self._known.get((connection.engine, chain))
        if (
            known is None
            or self._pending_key is not None
            or self.body_version != BODY_VERSION
            or (
                self.signer is not None
                and self.checkpoint_every > 0
                and (known[0] + 1) % self.checkpoint_every == 0
            )
        ):
            return None
        old_seq, old_hash = known
        record = seal_draft(item, old_seq + 1, old_hash, chain)
        row = self._row(chain, record)
        head_values = self._head_values(chain, record.seq, record.hash, record.at)
        if sql.named:
            params: Any = dict(zip(HEAD_COLUMNS, head_values, strict=True))
            params.update(zip(EVENT_COLUMNS, row, strict=True))
            params.update(chain=chain, old_seq=old_seq, old_hash=old_hash)
            head_params: Any = params
            event_params: Any = params
        else:
            head_params = (*head_values, chain, old_seq, old_hash)
            params = (*head_params, *row)
            event_params = row
        if sql.move_and_insert is not None:
            cursor.execute(sql.move_and_insert, params)
            if cursor.rowcount != 1:
                return None
        else:
            cursor.execute(sql.move_head_if, head_params)
            if cursor.rowcount != 1:
                return None
            cursor.execute(sql.insert_event, event_params)
        self._known[(connection.engine, chain)] = (record.seq, record.hash)
        return record

    @staticmethod
    def _row(chain: str, e: SealedEvent) -> tuple[Any, ...]:
        """An event's values in :data:`EVENT_COLUMNS` order."""
        return (
            chain,
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

    def _groups(self, drafts: list[Draft]) -> dict[str, list[int]]:
        """The drafts' positions by the chain they join."""
        partitions = self.partitions
        if partitions <= 1:
            return {CHAIN: list(range(len(drafts)))}
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(drafts):
            groups.setdefault(partition_of(item.dag_id, partitions), []).append(index)
        return groups

    def _seal(
        self,
        chain: str,
        head: tuple[int, str],
        indices: list[int],
        drafts: list[Draft],
        events: Sequence[AuditEvent],
    ) -> list[SealedEvent]:
        """The events at ``indices``, sealed one after the other after ``head`` in ``chain``."""
        seq, prev = head
        sealed = []
        for index in indices:
            seq += 1
            if self.body_version == BODY_VERSION:
                record = seal_draft(drafts[index], seq, prev, chain)
            else:
                record = seal(self._redacted(events[index]), seq, prev, version=self.body_version)
            sealed.append(record)
            prev = record.hash
        return sealed

    def _write(
        self,
        connection: Connection,
        cursor: Any,
        sql: DriverSql,
        chain: str,
        sealed: list[SealedEvent],
        due: list[SealedEvent],
        old_seq: int,
    ) -> None:
        """Insert one chain's sealed events, their due checkpoints, and move its signed head."""
        last = sealed[-1]
        rows = [self._row(chain, e) for e in sealed]
        head_values = self._head_values(chain, last.seq, last.hash, last.at)
        if sql.insert_and_move is not None and len(rows) == 1 and not due:
            # One round trip for the insert and the head's move (the one event *is* the new head,
            # so the named parameters the two share, chain/seq/hash/at, have the same values).
            if sql.named:
                params: Any = dict(zip(EVENT_COLUMNS, rows[0], strict=True))
                params.update(zip(HEAD_COLUMNS, head_values, strict=True))
                params.update(chain=chain, old_seq=old_seq)
            else:
                params = (*rows[0], *head_values, chain, old_seq)
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
                [self._checkpoint_row(chain, e.seq, e.hash, e.at, "periodic") for e in due],
            )
        self._move_head(cursor, sql, chain, old_seq, head_values)

    def write_tree(self, connection: Connection, reason: str) -> TreeHead:
        """Sign every partition's head as this transaction sees it into a tree head. Other
        partitions' heads are read without a lock: a committed position of a chain that only grows
        stays true, which is all a tree head claims."""
        assert self.signer is not None
        rows = connection.execute(
            select(audit_head_table.c.chain, audit_head_table.c.seq, audit_head_table.c.hash)
        ).all()
        heads = sorted_heads(PartitionHead(r.chain, int(r.seq), r.hash) for r in rows)
        at = format_time(datetime.now(UTC))
        root = tree_root(heads)
        tree = TreeHead(
            heads=tuple(heads),
            root=root,
            at=at,
            algorithm=self.signer.algorithm,
            key_id=self.signer.key_id,
            signature=self.signer.sign(tree_message(root, at)),
        )
        connection.execute(
            insert(audit_tree_table).values(
                at=at,
                heads=heads_text(heads),
                root=root,
                algorithm=tree.algorithm,
                key_id=tree.key_id,
                signature=tree.signature,
                reason=reason,
            )
        )
        return tree

    def _resolve_key(self, connection: Connection) -> None:
        """Turn the embedded default key into a real one, under a chain's lock: created only for
        an empty trail in a SQLite store (see :class:`~airflow_wfe.core.audit.signing.GeneratedKey`).
        """
        pending = self._pending_key
        assert pending is not None
        row = connection.execute(
            select(audit_head_table.c.key_id).where(audit_head_table.c.seq > 0).limit(1)
        ).first()
        self.signer = pending.for_store(
            connection.dialect.name,
            trail_empty=row is None,
            head_key=None if row is None else row.key_id,
        )
        self._pending_key = None

    def ready_signer(self, connection: Connection) -> Signer | None:
        """The signer, the embedded default resolved (for checkpoints and archives, which sign
        outside an append)."""
        if self._pending_key is not None:
            self._lock_head(connection, CHAIN)
            self._resolve_key(connection)
        return self.signer

    def _anchor_previous(self, connection: Connection, chain: str, before: int) -> None:
        """Anchor the latest committed tree head (or, in a store without one, the latest committed
        checkpoint of ``main`` before ``before``), if its signature holds (an anchor must never
        sign what someone slipped into the store). Only at checkpoints, never on the
        per-transition path; the mark anchored is committed (an anchor of a position that then
        rolled back would be a false alarm)."""
        from airflow_wfe.store.audit_anchor import write_anchor

        assert self.signer is not None
        assert self.anchor_dir is not None
        keys = Keyring([self.signer])
        tree = self.latest_tree(connection)
        if tree is not None:
            if keys.check(tree.key_id, tree_message(tree.root, tree.at), tree.signature):
                return
            write_anchor(self.anchor_dir, self.signer, tree.at, heads=tree.heads)
            return
        if chain != CHAIN:
            return
        row = connection.execute(
            select(audit_checkpoint_table)
            .where(audit_checkpoint_table.c.chain == CHAIN, audit_checkpoint_table.c.seq < before)
            .order_by(audit_checkpoint_table.c.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return
        mark = _checkpoint(row)
        if keys.check(
            mark.key_id, checkpoint_message(mark.seq, mark.hash, mark.at), mark.signature
        ):
            return
        write_anchor(
            self.anchor_dir,
            self.signer,
            mark.at,
            heads=(PartitionHead(CHAIN, mark.seq, mark.hash),),
        )

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
    def _lock_head_raw(cursor: Any, sql: DriverSql, chain: str) -> tuple[int, str] | None:
        cursor.execute(sql.lock_head, {"chain": chain} if sql.named else (chain,))
        row = cursor.fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    @staticmethod
    def _lock_head(connection: Connection, chain: str) -> tuple[int, str]:
        row = connection.execute(
            select(audit_head_table.c.seq, audit_head_table.c.hash)
            .where(audit_head_table.c.chain == chain)
            .with_for_update()
        ).first()
        if row is None:
            # The migration creates main's genesis head, a partition's first writer its own. A
            # chain without its head but with events (or archives) had its head deleted: starting
            # it again at #1 would collide with the events there (an IntegrityError on every
            # write) and bless whatever the tail now is.
            last = connection.execute(
                select(func.max(audit_event_table.c.seq)).where(audit_event_table.c.chain == chain)
            ).scalar()
            archived = connection.execute(
                select(func.max(audit_archive_table.c.last_seq)).where(
                    audit_archive_table.c.chain == chain
                )
            ).scalar()
            if last is not None or archived is not None:
                raise AuditError(
                    "audit trail",
                    f"the chain head row (wfe_audit_head, chain {chain!r}) is missing although "
                    f"the chain holds events up to #{last or archived}: the store was tampered "
                    "with or damaged, and nothing more is recorded in it until it is repaired. Run "
                    "`wfe audit verify` (with --anchors), then restore the store or its head from "
                    "a backup",
                )
            # An insert race is an IntegrityError, which the store retries.
            genesis = genesis_hash(chain)
            connection.execute(
                insert(audit_head_table).values(chain=chain, seq=0, hash=genesis, at="")
            )
            return 0, genesis
        return int(row.seq), str(row.hash)

    def _head_values(self, chain: str, seq: int, hash_: str, at: str) -> tuple[Any, ...]:
        """The head's new columns (``HEAD_COLUMNS``), signed."""
        signature = algorithm = key_id = None
        if self.signer is not None:
            signature = self.signer.sign(head_message(seq, hash_, at, chain))
            algorithm, key_id = self.signer.algorithm, self.signer.key_id
        return (seq, hash_, at, signature, algorithm, key_id)

    @staticmethod
    def _move_head(
        cursor: Any, sql: DriverSql, chain: str, old_seq: int, values: tuple[Any, ...]
    ) -> None:
        if sql.named:
            params: Any = dict(zip(HEAD_COLUMNS, values, strict=True))
            params.update(chain=chain, old_seq=old_seq)
        else:
            params = (*values, chain, old_seq)
        cursor.execute(sql.move_head, params)
        if cursor.rowcount != 1:
            raise ChainConflict

    def _checkpoint_row(
        self, chain: str, seq: int, hash_: str, at: str, reason: str
    ) -> dict[str, Any]:
        assert self.signer is not None
        return {
            "chain": chain,
            "seq": seq,
            "hash": hash_,
            "at": at,
            "algorithm": self.signer.algorithm,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(checkpoint_message(seq, hash_, at, chain)),
            "reason": reason,
        }

    def checkpoint(self, connection: Connection, reason: str = "manual") -> Checkpoint | None:
        """Sign a checkpoint at the head of every partition that has events, and a tree head over
        them all; returns ``main``'s checkpoint (else the first partition's), ``None`` for an
        empty trail or no signer."""
        if self.ready_signer(connection) is None:
            return None
        chains = sorted(
            (str(c) for c in connection.execute(select(audit_head_table.c.chain)).scalars()),
            key=chain_order,
        )
        marks = []
        for chain in chains:
            seq, hash_ = self._lock_head(connection, chain)
            if seq == 0:
                continue
            where = (audit_checkpoint_table.c.chain == chain, audit_checkpoint_table.c.seq == seq)
            if (
                connection.execute(select(audit_checkpoint_table.c.seq).where(*where)).first()
                is None
            ):
                at = connection.execute(
                    select(audit_event_table.c.at).where(
                        audit_event_table.c.chain == chain, audit_event_table.c.seq == seq
                    )
                ).scalar_one()
                connection.execute(
                    insert(audit_checkpoint_table).values(
                        self._checkpoint_row(chain, seq, hash_, at, reason)
                    )
                )
            marks.append(
                _checkpoint(connection.execute(select(audit_checkpoint_table).where(*where)).one())
            )
        if not marks:
            return None
        if len(chains) > 1 or chains != [CHAIN]:
            self.write_tree(connection, reason)
        return marks[0]

    # -- reading -----------------------------------------------------------------------------

    @staticmethod
    def head(connection: Connection, chain: str = CHAIN) -> Head | None:
        row = connection.execute(
            select(audit_head_table).where(audit_head_table.c.chain == chain)
        ).first()
        return None if row is None else _head(row)

    @staticmethod
    def heads(connection: Connection) -> dict[str, Head]:
        """Every partition's head row, by chain, in partition order."""
        rows = connection.execute(select(audit_head_table)).all()
        return {
            str(row.chain): _head(row) for row in sorted(rows, key=lambda r: chain_order(r.chain))
        }

    @staticmethod
    def tree_heads(connection: Connection) -> list[tuple[TreeHead | None, str]]:
        """Every stored tree head, oldest first, as (tree head, its row's id); ``None`` for a row
        whose partition list cannot be read (verification names it)."""
        found: list[tuple[TreeHead | None, str]] = []
        for row in connection.execute(select(audit_tree_table).order_by(audit_tree_table.c.id)):
            try:
                heads = tuple(parse_heads(row.heads))
            except ValueError:
                found.append((None, str(row.id)))
                continue
            found.append(
                (
                    TreeHead(
                        heads=heads,
                        root=row.root,
                        at=row.at,
                        algorithm=row.algorithm,
                        key_id=row.key_id,
                        signature=row.signature,
                    ),
                    str(row.id),
                )
            )
        return found

    @staticmethod
    def latest_tree(connection: Connection) -> TreeHead | None:
        for tree, _id in reversed(AuditLog.tree_heads(connection)):
            if tree is not None:
                return tree
        return None

    @staticmethod
    def checkpoints(
        connection: Connection, chain: str = CHAIN, *, from_seq: int = 0
    ) -> dict[int, Checkpoint]:
        rows = connection.execute(
            select(audit_checkpoint_table).where(
                audit_checkpoint_table.c.chain == chain, audit_checkpoint_table.c.seq >= from_seq
            )
        )
        return {int(row.seq): _checkpoint(row) for row in rows}

    @staticmethod
    def archive_anchor(
        connection: Connection, chain: str = CHAIN
    ) -> tuple[int, str, Checkpoint | None]:
        """Where the chain in the database starts: after the last archive, else at #1 (with that
        archive's record as a mark; whether its signature holds is verification's business)."""
        row = connection.execute(
            select(audit_archive_table)
            .where(audit_archive_table.c.chain == chain)
            .order_by(audit_archive_table.c.last_seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return 1, genesis_hash(chain), None
        return int(row.last_seq) + 1, row.last_hash, _archive_mark(row)

    @staticmethod
    def archives(connection: Connection, chain: str = CHAIN) -> list[Checkpoint]:
        """Every archive record of ``chain`` as a signed mark (``first_seq`` set), oldest first."""
        rows = connection.execute(
            select(audit_archive_table)
            .where(audit_archive_table.c.chain == chain)
            .order_by(audit_archive_table.c.last_seq)
        )
        return [_archive_mark(row) for row in rows]

    @staticmethod
    def event_chains(connection: Connection) -> set[str]:
        """Every chain that holds events or archive records (a skip over the primary key)."""
        chains = {
            str(c)
            for c in connection.execute(select(audit_archive_table.c.chain).distinct()).scalars()
        }
        found = connection.execute(select(func.min(audit_event_table.c.chain))).scalar()
        while found is not None:
            chains.add(str(found))
            found = connection.execute(
                select(func.min(audit_event_table.c.chain)).where(audit_event_table.c.chain > found)
            ).scalar()
        return chains

    @staticmethod
    def stream_rows(
        connection: Connection,
        chain: str = CHAIN,
        *,
        since: str | None = None,
        batch: int = 5000,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every event of ``chain`` in chain order (from ``since``, a formatted UTC time) as batches
        of plain DBAPI tuples of :data:`~airflow_wfe.core.audit.verify.ROW_COLUMNS`: what
        verification reads, without building a SQLAlchemy row per event. Memory is one batch on any
        backend (a server-side cursor on PostgreSQL), in the connection's current transaction.
        """
        dialect = connection.dialect
        style = dialect.paramstyle
        marks = {"qmark": ("?", "?"), "format": ("%s", "%s"), "numeric": (":1", ":2"),
                 "named": (":chain", ":since")}.get(style, ("%(chain)s", "%(since)s"))  # fmt: skip
        where = f" WHERE chain = {marks[0]}"
        if since is not None:
            where += f" AND at >= {marks[1]}"
        sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM {audit_event_table.name}{where} ORDER BY seq"
        values = (chain,) if since is None else (chain, since)
        params: Any = values
        if style in ("named", "pyformat"):
            params = dict(zip(("chain", "since"), values, strict=False))
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
