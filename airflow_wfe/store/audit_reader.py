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
from airflow_wfe.core.audit.signing import Signer, checkpoint_message
from airflow_wfe.core.audit.verify import Checkpoint, Verifier, VerifyReport
from airflow_wfe.exceptions import AuditError
from airflow_wfe.store.audit_writer import AuditLog, event_query
from airflow_wfe.store.base import StoreBase
from airflow_wfe.store.rows import sealed_event
from airflow_wfe.store.tables import audit_archive_table, audit_event_table

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

    def verify_audit(self, signer: Signer | None, *, since: datetime | None = None) -> VerifyReport:
        """Check the whole chain in the database (or the part from ``since`` on).

        A full check starts where the last archive ended (or at event #1) and must link up from there;
        a ``--since`` check takes the first event of its window as given and checks everything after it,
        every checkpoint in the window, and the head.
        """
        with self._read() as connection:
            start_seq, prev_hash, anchor = self.audit.archive_anchor(connection)
            head = self.audit.head(connection)
            checkpoints = self.audit.checkpoints(connection, from_seq=start_seq)
            if anchor is not None:
                checkpoints.setdefault(anchor.seq, anchor)
            verifier = Verifier(
                start_seq=start_seq,
                prev_hash=prev_hash,
                checkpoints={s: c for s, c in checkpoints.items() if s >= start_seq},
                signer=signer,
                anchored=since is None,
            )
            if anchor is not None:
                # The archive's own signed mark: the chain here must start right after it.
                verifier_anchor = Verifier(
                    start_seq=anchor.seq, prev_hash=anchor.hash, checkpoints={}, signer=signer
                )
                verifier_anchor.check_signature(anchor, "archive checkpoint")
                verifier.report.findings.extend(verifier_anchor.report.findings)
                verifier.report.notes.append(
                    f"events up to #{anchor.seq} are archived (verify the file with --archive)"
                )
            for rows in self.audit.stream_rows(
                connection, since=None if since is None else format_time(since)
            ):
                verifier.feed_rows(rows)
            report = verifier.finish(head)
        if since is not None:
            # A window need not contain checkpoints taken before its first event.
            first = report.first_seq or 0
            report.findings = [
                f
                for f in report.findings
                if not (f.kind == "truncated" and f.seq is not None and f.seq < first)
            ]
        return report

    def archive_audit(
        self,
        signer: Signer,
        *,
        older_than: datetime,
        folder: Path,
        actor: str,
        batch_limit: int = 1_000_000,
    ) -> ArchiveResult | None:
        """Move events older than ``older_than`` into a signed JSONL file in ``folder``.

        Refuses to archive a chain that does not verify (that would launder tampering into a file).
        Returns ``None`` when nothing is old enough.

        Raises:
            AuditError: the chain does not verify, or the file cannot be written.
        """
        cutoff = format_time(older_than)
        with self._read() as connection:
            start_seq, prev_hash, _anchor = self.audit.archive_anchor(connection)
            last_seq = connection.execute(
                select(func.max(audit_event_table.c.seq)).where(audit_event_table.c.at < cutoff)
            ).scalar_one_or_none()
        if last_seq is None or last_seq < start_seq:
            return None
        last_seq = min(int(last_seq), start_seq + batch_limit - 1)
        report = self.verify_audit(signer)
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
            signature=signer.sign(checkpoint_message(int(last.seq), last.hash, now)),
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

    def verify_audit_archive(self, path: Path, signer: Signer | None) -> VerifyReport:
        """Check an archive file: its chain, its signed closing checkpoint, and that
        the store's record of it has the same SHA-256 and last hash.

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
        mark = Checkpoint(**closing)
        verifier = Verifier(
            start_seq=int(header["first_seq"]),
            prev_hash=header["prev_hash"],
            checkpoints={mark.seq: mark},
            signer=signer,
        )
        for line in lines[1:-1]:
            data = json.loads(line)
            verifier.feed(SealedEvent(**{**data, "seq": int(data["seq"])}))
        report = verifier.finish(None)
        if report.last_seq != mark.seq:
            verifier.add_finding(
                report.last_seq, "truncated", f"the file's checkpoint covers #{mark.seq}"
            )
        digest = hashlib.sha256(raw).hexdigest()
        with self._read() as connection:
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
        return self._write("audit checkpoint", lambda c: log.checkpoint(c, reason))
