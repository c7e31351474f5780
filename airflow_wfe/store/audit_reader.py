"""Reading the audit trail back: verify it, list and export its events, archive the old ones.

The writing half lives in :mod:`.audit_writer` (inside state-change transactions); this module is what
auditors and operators run. Verification streams the events in chain order, so its memory stays flat.
Archiving moves the oldest events to a JSONL file that carries its own signed checkpoint; the chain in
the database then starts from the archive's last hash, and both halves stay verifiable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, delete, func, insert, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from airflow_wfe.core.audit.anchors import check_anchors
from airflow_wfe.core.audit.canonical import canonical_json, format_time
from airflow_wfe.core.audit.events import GENESIS_HASH, AuditEvent, EventType, SealedEvent
from airflow_wfe.core.audit.signing import Keyring, Signer, archive_message
from airflow_wfe.core.audit.verify import (
    ARCHIVE_MARK,
    HEAD_MARK,
    Checkpoint,
    Finding,
    Verifier,
    VerifyReport,
)
from airflow_wfe.exceptions import AuditError, StoreUnavailableError
from airflow_wfe.store.audit_anchor import read_anchors, write_anchor
from airflow_wfe.store.audit_projections import check_projections
from airflow_wfe.store.audit_writer import AuditLog, event_query, resolve_signer
from airflow_wfe.store.base import StoreBase
from airflow_wfe.store.engine import masked_url, parse_url
from airflow_wfe.store.rows import sealed_event
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
)

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import ArchiveResult

__all__ = ["ARCHIVE_FORMAT", "AuditReads"]

ARCHIVE_FORMAT: Final = "wfe-audit-archive/1"


def _archive_lines(rows: Sequence[Any], header: dict[str, Any], mark: Checkpoint) -> Iterator[str]:
    yield canonical_json(header)
    for row in rows:
        yield canonical_json(
            {
                "seq": int(row.seq),
                "at": row.at,
                "type": row.type,
                "actor": row.actor,
                "dag_id": row.dag_id,
                "run_id": row.run_id,
                "step_id": row.step_id,
                "prev_hash": row.prev_hash,
                "hash": row.hash,
                "body": row.body,
            }
        )
    yield canonical_json({"checkpoint": mark.__dict__})


def verify_trail(
    connection: Connection,
    keys: Keyring | Signer | None,
    *,
    since: datetime | None = None,
    signatures: bool = True,
) -> VerifyReport:
    """Verify the trail readable through ``connection`` (one snapshot: see
    :func:`read_only_connection`)."""
    archives = AuditLog.archives(connection)
    head = AuditLog.head(connection)
    start_seq, prev_hash = 1, GENESIS_HASH
    if archives:
        start_seq, prev_hash = archives[-1].seq + 1, archives[-1].hash
    checkpoints = AuditLog.checkpoints(connection, from_seq=start_seq)
    verifier = Verifier(
        start_seq=start_seq,
        prev_hash=prev_hash,
        checkpoints=checkpoints,
        keys=keys,
        signatures=signatures,
        anchored=since is None,
    )
    expected_first = 1
    for mark in archives:
        first = mark.first_seq if mark.first_seq is not None else expected_first
        if first != expected_first:
            verifier.add_finding(
                expected_first,
                "deleted",
                f"event(s) #{expected_first}..#{first - 1} are neither in the store nor in an "
                "archive record",
            )
        if not verifier.check_signature(mark, ARCHIVE_MARK):
            verifier.add_finding(
                first,
                "deleted",
                f"event(s) #{first}..#{mark.seq} are not in the store, and the archive record "
                "standing for them does not verify: the boundary does not count",
            )
        expected_first = mark.seq + 1
    if archives:
        verifier.report.notes.append(
            f"events up to #{archives[-1].seq} are archived (verify the file with --archive)"
        )
    for rows in AuditLog.stream_rows(
        connection, since=None if since is None else format_time(since)
    ):
        verifier.feed_rows(rows)
    report = verifier.finish(head)
    if since is None and not archives:
        check_projections(connection, report)
    elif since is None:
        report.notes.append("state tables not replayed: the trail's early events are archived")
    if since is not None:
        # A window need not contain checkpoints taken before its first event.
        first = report.first_seq or 0
        report.findings = [
            f
            for f in report.findings
            if not (f.kind == "truncated" and f.seq is not None and f.seq < first)
        ]
    return report


@contextlib.contextmanager
def read_only_connection(url: str) -> Iterator[Connection]:
    """A connection that can only read the store at ``url``, in one snapshot, creating nothing.

    SQLite: the file is opened with ``mode=ro`` (a missing file is an error, not a new empty
    store; a copy on read-only media is read with ``immutable=1``). Server stores: a read-only,
    repeatable-read transaction. Either way the audit tables must exist.

    Raises:
        StoreUnavailableError: the store cannot be opened, or holds no audit trail.
    """
    parsed = parse_url(url)
    shown = masked_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_read_only_engine(parsed, shown)
    else:
        try:
            engine = create_engine(parsed, poolclass=NullPool)
        except ImportError as exc:
            raise StoreUnavailableError(
                shown, f"its database driver is not installed ({exc})"
            ) from None
    try:
        with engine.connect() as opened:
            connection = opened
            if connection.dialect.name == "postgresql":
                connection = opened.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            elif connection.dialect.name == "sqlite":
                # One snapshot for the head, the checkpoints and the events (WAL readers).
                connection.exec_driver_sql("BEGIN")
            missing = [t for t in _TRAIL_TABLES if not inspect(connection).has_table(t)]
            if missing:
                raise StoreUnavailableError(
                    shown,
                    f"no airflow-wfe audit trail here (table {missing[0]} missing): a mistyped "
                    "store URL? Verification never creates a store or its tables",
                )
            with (
                connection.begin() if not connection.in_transaction() else contextlib.nullcontext()
            ):
                yield connection
    except OperationalError as exc:
        raise StoreUnavailableError(shown, str(exc.orig).splitlines()[0]) from exc
    finally:
        engine.dispose()


_TRAIL_TABLES: Final = (
    audit_event_table.name,
    audit_head_table.name,
    audit_checkpoint_table.name,
    audit_archive_table.name,
)


def _sqlite_read_only_engine(parsed: URL, shown: str) -> Engine:
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise StoreUnavailableError(shown, "verification needs the path of a SQLite file")
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise StoreUnavailableError(
            shown, f"no such file {path} (verification never creates a store)"
        )
    # A live store in WAL mode has its -wal file beside it while anyone has it open: read it
    # through SQLite's locks. Without one (a copy, a backup, WORM media, a store nobody has open)
    # opening it even read-only would create -wal/-shm files: read it as immutable instead.
    live = path.with_name(path.name + "-wal").exists() and os.access(path.parent, os.W_OK)
    flags = "mode=ro" if live else "mode=ro&immutable=1"
    uri = f"file:{quote(str(path))}?{flags}"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.isolation_level = None
        return connection

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


class AuditReads(StoreBase):
    """The trail read back: events, verification, checkpoints and archives."""

    def audit_events(
        self,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[SealedEvent]:
        """Stored events in chain order, filtered; streamed."""
        query = event_query(
            dag_id=dag_id,
            run_id=run_id,
            since=None if since is None else format_time(since),
            types=types,
        )
        with self._read() as connection:
            for row in self.audit.stream(connection, query):
                yield sealed_event(row)

    def verify_audit(
        self,
        keys: Keyring | Signer | None,
        *,
        since: datetime | None = None,
        signatures: bool = True,
    ) -> VerifyReport:
        """Check the whole chain in the store (or the part from ``since`` on), read-only.

        The store is opened for reading only (a SQLite file with ``mode=ro``, a read-only
        transaction on a server), so a read-only copy verifies in place, and nothing is ever
        created: a mistyped URL or a missing file is an error, not an empty trail.

        A full check starts at event #1, or right after the archive records (each of which must
        carry a valid archive signature for its position), and must link up from there; a
        ``--since`` check takes the first event of its window as given and checks everything after
        it, every checkpoint in the window, and the head.

        Raises:
            StoreUnavailableError: the store cannot be opened, or holds no audit trail.
        """
        with read_only_connection(self.url) as connection:
            return verify_trail(connection, keys, since=since, signatures=signatures)

    def archive_audit(
        self,
        signer: Signer,
        *,
        older_than: datetime,
        folder: Path,
        actor: str,
        batch_limit: int = 1_000_000,
        keys: Keyring | None = None,
    ) -> ArchiveResult | None:
        """Move events older than ``older_than`` into a signed JSONL file in ``folder``.

        Refuses to archive a chain that does not verify with ``keys`` (default: ``signer``'s own),
        which would launder tampering into a file. Returns ``None`` when nothing is old enough.

        Raises:
            AuditError: the chain does not verify, or the file cannot be written.
        """
        cutoff = format_time(older_than)
        with self._read() as connection:
            signer = resolve_signer(signer, connection)
            start_seq, prev_hash, _anchor = self.audit.archive_anchor(connection)
            last_seq = connection.execute(
                select(func.max(audit_event_table.c.seq)).where(audit_event_table.c.at < cutoff)
            ).scalar_one_or_none()
        if last_seq is None or last_seq < start_seq:
            return None
        last_seq = min(int(last_seq), start_seq + batch_limit - 1)
        if keys is None:
            keys = Keyring([signer])
        else:
            keys.add(signer)
        report = self.verify_audit(keys)
        if not report.ok:
            raise AuditError(
                "audit trail", f"will not archive a broken chain: {report.findings[0]}"
            )
        with self._read() as connection:
            rows = connection.execute(
                select(audit_event_table)
                .where(audit_event_table.c.seq >= start_seq, audit_event_table.c.seq <= last_seq)
                .order_by(audit_event_table.c.seq)
            ).all()
        last = rows[-1]
        now = format_time(datetime.now(UTC))
        mark = Checkpoint(
            seq=int(last.seq),
            hash=last.hash,
            at=now,
            algorithm=signer.algorithm,
            key_id=signer.key_id,
            signature=signer.sign(archive_message(start_seq, int(last.seq), last.hash, now)),
            first_seq=start_seq,
        )
        header = {
            "format": ARCHIVE_FORMAT,
            "first_seq": start_seq,
            "last_seq": int(last.seq),
            "prev_hash": prev_hash,
            "created_at": now,
        }
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"wfe-audit-{start_seq:012d}-{int(last.seq):012d}.jsonl"
        text = "".join(line + "\n" for line in _archive_lines(rows, header, mark))
        digest = hashlib.sha256(text.encode()).hexdigest()
        temporary = path.with_suffix(".partial")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise AuditError(str(path), f"cannot write the archive: {exc.strerror}") from None

        def attempt(connection: Connection) -> None:
            start_now, _prev, _a = self.audit.archive_anchor(connection)
            if start_now != start_seq:
                raise AuditError(
                    "audit trail", "another archive ran at the same time; run it again"
                )
            connection.execute(
                insert(audit_archive_table).values(
                    first_seq=start_seq,
                    last_seq=mark.seq,
                    last_hash=mark.hash,
                    at=mark.at,
                    path=str(path),
                    sha256=digest,
                    algorithm=mark.algorithm,
                    key_id=mark.key_id,
                    signature=mark.signature,
                )
            )
            connection.execute(delete(audit_event_table).where(audit_event_table.c.seq <= mark.seq))
            self.audit.append(
                connection,
                [
                    AuditEvent(
                        type=EventType.ARCHIVED,
                        actor=actor,
                        at=datetime.now(UTC),
                        payload={
                            "first_seq": start_seq,
                            "last_seq": mark.seq,
                            "last_hash": mark.hash,
                            "file": path.name,
                            "sha256": digest,
                            "older_than": cutoff,
                        },
                    )
                ],
            )

        self._write("audit archive", attempt)
        from airflow_wfe.core.ledger import (
            ArchiveResult,  # cold path: not loaded by task processes (core.ledger)
        )

        return ArchiveResult(path, start_seq, mark.seq, len(rows), digest)

    def verify_audit_archive(
        self, path: Path, keys: Keyring | Signer | None, *, signatures: bool = True
    ) -> VerifyReport:
        """Check an archive file: its chain, its signed closing mark (an archive signature for
        exactly the events it holds), and that the store's record of it has the same SHA-256 and
        last hash. The store is only read (see :func:`read_only_connection`).

        Raises:
            AuditError: the file cannot be read or is not an archive.
        """
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise AuditError(str(path), f"cannot read the archive: {exc.strerror}") from None
        lines = raw.decode("utf-8").splitlines()
        try:
            header = json.loads(lines[0])
            closing = json.loads(lines[-1])["checkpoint"]
            if header.get("format") != ARCHIVE_FORMAT:
                raise ValueError(header.get("format"))
        except (IndexError, KeyError, TypeError, ValueError):
            raise AuditError(str(path), f"not a {ARCHIVE_FORMAT} file") from None
        try:
            mark = Checkpoint(**closing)
        except TypeError:
            raise AuditError(str(path), "its closing mark is not a signed archive mark") from None
        first_seq = int(header["first_seq"])
        verifier = Verifier(
            start_seq=first_seq,
            prev_hash=header["prev_hash"],
            checkpoints={},
            keys=keys,
            signatures=signatures,
        )
        if mark.first_seq != first_seq:
            verifier.add_finding(
                first_seq, "edited", f"the file's closing mark is for events from #{mark.first_seq}"
            )
        verifier.check_signature(mark, ARCHIVE_MARK)
        for line in lines[1:-1]:
            data = json.loads(line)
            verifier.feed(SealedEvent(**{**data, "seq": int(data["seq"])}))
        report = verifier.finish(None, expect_head=False)
        if report.last_seq != mark.seq:
            verifier.add_finding(
                report.last_seq, "truncated", f"the file's signed mark covers #{mark.seq}"
            )
        elif verifier.prev_hash != mark.hash:
            verifier.add_finding(mark.seq, "rewritten", "it differs from the file's signed mark")
        digest = hashlib.sha256(raw).hexdigest()
        with read_only_connection(self.url) as connection:
            row = connection.execute(
                select(audit_archive_table).where(audit_archive_table.c.last_seq == mark.seq)
            ).first()
        if row is None:
            report.notes.append("the store has no record of this archive")
        elif row.sha256 != digest or row.last_hash != mark.hash:
            verifier.add_finding(
                mark.seq, "edited", "the file differs from the archive the store recorded"
            )
        return report

    def audit_checkpoint(self, signer: Signer, reason: str = "manual") -> Checkpoint | None:
        """Sign a checkpoint at the current head with ``signer`` (``None`` for an empty chain)."""
        log = AuditLog(signer=signer, redactor=self.audit.redactor)
        # (The embedded default key is resolved under the chain's lock by the log itself.)
        return self._write("audit checkpoint", lambda c: log.checkpoint(c, reason))

    def audit_anchor(self, signer: Signer, folder: Path) -> tuple[Path, int]:
        """Write a signed anchor of the chain's head, as it stands now, to ``folder`` (outside the
        store); also when nothing happened since the last one (its time is then news). Returns the
        file and the position anchored.

        Raises:
            AuditError: the head's own signature does not hold (an anchor must not bless a forged
                head), or the folder cannot be written.
        """
        with self._read() as connection:
            signer = resolve_signer(signer, connection)
            head = AuditLog.head(connection)
        if head is None:
            raise AuditError("audit trail", "the chain head row is missing: nothing to anchor")
        if head.seq > 0:
            verifier = Verifier(
                start_seq=1, prev_hash=GENESIS_HASH, checkpoints={}, keys=Keyring([signer])
            )
            if not verifier.check_signature(head, HEAD_MARK):
                raise AuditError(
                    "audit trail",
                    f"will not anchor a head whose signature does not hold: "
                    f"{verifier.report.findings[0]}",
                )
        now = format_time(datetime.now(UTC))
        return write_anchor(folder, signer, head.seq, head.hash, now), head.seq

    def verify_audit_anchors(
        self, folder: Path, keys: Keyring | Signer | None, *, signatures: bool = True
    ) -> VerifyReport:
        """Compare the store with every anchor in ``folder``: a truncated, rolled back or erased
        store is named by the last anchored position that is gone (read-only)."""
        anchors = read_anchors(folder)
        keyring = None
        if signatures:
            keyring = keys if isinstance(keys, Keyring) else Keyring([] if keys is None else [keys])
        report = VerifyReport(signatures_checked=bool(keyring))
        with read_only_connection(self.url) as connection:
            archives = AuditLog.archives(connection)
            last = connection.execute(select(func.max(audit_event_table.c.seq))).scalar()

            def event_hash(seq: int) -> str | None:
                found = connection.execute(
                    select(audit_event_table.c.hash).where(audit_event_table.c.seq == seq)
                ).scalar()
                return None if found is None else str(found)

            findings, notes = check_anchors(
                anchors,
                keyring,
                event_hash=event_hash,
                archived_up_to=archives[-1].seq if archives else 0,
                last_seq=int(last or 0),
            )
        if signatures and not keyring:
            findings.insert(0, (None, "no key", "no key to check the anchors' signatures with"))
        report.findings = [Finding(seq, kind, message) for seq, kind, message in findings]
        report.notes = notes
        report.checkpoints = len(anchors)
        return report
