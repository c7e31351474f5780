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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, delete, func, insert, select

from airflow_wfe.core.audit.canonical import canonical_json, format_time
from airflow_wfe.core.audit.events import AuditEvent, EventType, SealedEvent
from airflow_wfe.core.audit.partitions import MAIN, PartitionHead, genesis_hash
from airflow_wfe.core.audit.signing import Keyring, Signer, archive_message
from airflow_wfe.core.audit.verify import (
    ARCHIVE_MARK,
    HEAD_MARK,
    Checkpoint,
    Verifier,
    VerifyReport,
)
from airflow_wfe.exceptions import AuditError
from airflow_wfe.store.audit_anchor import read_anchors, write_anchor
from airflow_wfe.store.audit_verify import read_only_connection, verify_anchors, verify_trail
from airflow_wfe.store.audit_writer import CHAIN, AuditLog, event_query, resolve_signer
from airflow_wfe.store.base import StoreBase
from airflow_wfe.store.rows import sealed_event
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_event_table,
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
            return verify_trail(connection, keys, since=since, signatures=signatures, url=self.url)

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
        """Move events older than ``older_than`` into signed JSONL files in ``folder``, one per
        partition that has such events.

        Refuses to archive a trail that does not verify with ``keys`` (default: ``signer``'s own),
        which would launder tampering into a file. Returns ``None`` when nothing is old enough,
        else what was archived of ``main`` (or of the first partition archived), with ``events``
        counting every partition's.

        Raises:
            AuditError: the trail does not verify, or a file cannot be written.
        """
        cutoff = format_time(older_than)
        with self._read() as connection:
            signer = resolve_signer(signer, connection)
            chains = list(AuditLog.heads(connection))
            spans = []
            for chain in chains:
                start_seq, prev_hash, _anchor = self.audit.archive_anchor(connection, chain)
                last_seq = connection.execute(
                    select(func.max(audit_event_table.c.seq)).where(
                        audit_event_table.c.chain == chain, audit_event_table.c.at < cutoff
                    )
                ).scalar_one_or_none()
                if last_seq is not None and last_seq >= start_seq:
                    last_seq = min(int(last_seq), start_seq + batch_limit - 1)
                    spans.append((chain, start_seq, prev_hash, last_seq))
        if not spans:
            return None
        if keys is None:
            keys = Keyring([signer])
        else:
            keys.add(signer)
        report = self.verify_audit(keys)
        if not report.ok:
            raise AuditError(
                "audit trail", f"will not archive a broken chain: {report.findings[0]}"
            )
        results = [self._archive_chain(signer, folder, actor, cutoff, *span) for span in spans]
        first = results[0]
        return type(first)(
            first.path,
            first.first_seq,
            first.last_seq,
            sum(r.events for r in results),
            first.sha256,
        )

    def _archive_chain(
        self,
        signer: Signer,
        folder: Path,
        actor: str,
        cutoff: str,
        chain: str,
        start_seq: int,
        prev_hash: str,
        last_seq: int,
    ) -> ArchiveResult:
        """Archive events ``start_seq``..``last_seq`` of ``chain`` (see :meth:`archive_audit`)."""
        with self._read() as connection:
            rows = connection.execute(
                select(audit_event_table)
                .where(
                    audit_event_table.c.chain == chain,
                    audit_event_table.c.seq >= start_seq,
                    audit_event_table.c.seq <= last_seq,
                )
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
            signature=signer.sign(archive_message(start_seq, int(last.seq), last.hash, now, chain)),
            first_seq=start_seq,
        )
        header: dict[str, Any] = {
            "format": ARCHIVE_FORMAT,
            "first_seq": start_seq,
            "last_seq": int(last.seq),
            "prev_hash": prev_hash,
            "created_at": now,
        }
        name = f"wfe-audit-{start_seq:012d}-{int(last.seq):012d}.jsonl"
        if chain != MAIN:
            header["chain"] = chain
            name = f"wfe-audit-{chain}-{start_seq:012d}-{int(last.seq):012d}.jsonl"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
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
            start_now, _prev, _a = self.audit.archive_anchor(connection, chain)
            if start_now != start_seq:
                raise AuditError(
                    "audit trail", "another archive ran at the same time; run it again"
                )
            connection.execute(
                insert(audit_archive_table).values(
                    chain=chain,
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
            connection.execute(
                delete(audit_event_table).where(
                    audit_event_table.c.chain == chain, audit_event_table.c.seq <= mark.seq
                )
            )
            payload: dict[str, Any] = {
                "first_seq": start_seq,
                "last_seq": mark.seq,
                "last_hash": mark.hash,
                "file": path.name,
                "sha256": digest,
                "older_than": cutoff,
            }
            if chain != MAIN:
                payload["chain"] = chain
            self.audit.append(
                connection,
                [
                    AuditEvent(
                        type=EventType.ARCHIVED, actor=actor, at=datetime.now(UTC), payload=payload
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
        chain = str(header.get("chain", MAIN))
        verifier = Verifier(
            start_seq=first_seq,
            prev_hash=header["prev_hash"],
            checkpoints={},
            keys=keys,
            signatures=signatures,
            chain=chain,
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
            # Named at the first event missing (the file holds none: at the first it should).
            missing = first_seq if report.last_seq is None else report.last_seq + 1
            verifier.add_finding(
                missing,
                "truncated",
                f"the file ends at #{report.last_seq if report.last_seq is not None else '-'}, "
                f"but its signed mark covers #{mark.seq}",
            )
        elif verifier.prev_hash != mark.hash:
            verifier.add_finding(mark.seq, "rewritten", "it differs from the file's signed mark")
        digest = hashlib.sha256(raw).hexdigest()
        with read_only_connection(self.url) as connection:
            row = connection.execute(
                select(audit_archive_table).where(
                    audit_archive_table.c.chain == chain, audit_archive_table.c.last_seq == mark.seq
                )
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
        """Write a signed anchor of every partition's head, as it stands now, to ``folder``
        (outside the store); also when nothing happened since the last one (its time is then
        news). A partitioned store also gets a signed tree head of the same positions. Returns the
        file and the number of events anchored (over all partitions).

        Raises:
            AuditError: a head's own signature does not hold (an anchor must not bless a forged
                head), or the folder cannot be written.
        """
        with self._read() as connection:
            signer = resolve_signer(signer, connection)
            heads = AuditLog.heads(connection)
        if CHAIN not in heads:
            raise AuditError("audit trail", "the chain head row is missing: nothing to anchor")
        for chain, head in heads.items():
            if head.seq == 0:
                continue
            verifier = Verifier(
                start_seq=1,
                prev_hash=genesis_hash(chain),
                checkpoints={},
                keys=Keyring([signer]),
                chain=chain,
            )
            if not verifier.check_signature(head, HEAD_MARK):
                raise AuditError(
                    "audit trail",
                    f"will not anchor a head whose signature does not hold: "
                    f"{verifier.report.findings[0]}",
                )
        positions = [PartitionHead(chain, h.seq, h.hash) for chain, h in heads.items()]
        if len(heads) > 1:
            log = AuditLog(signer=signer, redactor=self.audit.redactor)
            self._write("audit anchor", lambda c: log.write_tree(c, "anchor"))
        now = format_time(datetime.now(UTC))
        return write_anchor(folder, signer, now, heads=positions), sum(p.seq for p in positions)

    def verify_audit_anchors(
        self, folder: Path, keys: Keyring | Signer | None, *, signatures: bool = True
    ) -> VerifyReport:
        """Compare the store with every anchor in ``folder``: a truncated, rolled back or erased
        store (or partition) is named by the last anchored position that is gone (read-only)."""
        anchors = read_anchors(folder)
        with read_only_connection(self.url) as connection:
            return verify_anchors(connection, anchors, keys, signatures=signatures)
