"""The audit trail: one run's story, verification, export, checkpoints and archives.

Signing keys are chosen here, once for every face. Verification accepts the keys given
(``--public-key``), the configured signing key (its public half), ``[wfe] audit_verify_keys`` and the
embedded default key if its file exists; it never creates a key (a fresh key would only ever say
"unknown key", or worse, sign a forgery). Without any key the verdict is "not verified".
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.audit import (
    AnchorResult,
    ArchiveResult,
    AuditEvent,
    AuditStory,
    AuditVerification,
    CheckpointResult,
    Finding,
    VerifyReport,
)
from airflow_wfe.core.audit.canonical import canonical_json
from airflow_wfe.core.audit.events import SealedEvent, body_hash
from airflow_wfe.core.audit.signing import (
    GeneratedKey,
    Keyring,
    Signer,
    load_public_key,
    load_signer,
    load_verify_key,
)
from airflow_wfe.core.audit.verify import VerifyReport as VerifyRecord
from airflow_wfe.core.spec.models import parse_duration
from airflow_wfe.exceptions import ConfigError, RunNotFoundError

__all__ = [
    "CSV_COLUMNS",
    "AuditExport",
    "anchor",
    "archive",
    "checkpoint",
    "export",
    "parse_since",
    "run_story",
    "sync_from_airflow",
    "verify",
]

log = logging.getLogger(__name__)

#: Columns of ``wfe audit export --format csv``, in order.
CSV_COLUMNS: Final = (
    "seq",
    "at",
    "type",
    "actor",
    "dag_id",
    "run_id",
    "step_id",
    "map_index",
    "payload",
    "versions",
    "prev_hash",
    "hash",
)


def parse_since(value: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T12:00:00Z``, or a duration back from now (``7d``, ``12h``).

    Raises:
        ValueError: neither (a face reports it as a usage error).
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            delta = parse_duration(text)
        except ValueError:
            delta = None
        if delta is None or isinstance(delta, str):
            raise ValueError(
                f"{value!r} is neither a date/time (2026-11-01, 2026-11-01T12:00:00Z) nor a "
                "duration back from now (7d, 12h, 30m)"
            ) from None
        moment: datetime = datetime.now(UTC) - delta
        return moment
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _event(sealed: SealedEvent) -> AuditEvent:
    return AuditEvent(**sealed.content(), hash=sealed.hash)


def sync_from_airflow(ctx: AppContext, *, on_error: Callable[[str], None] | None = None) -> int:
    """Import the changes made in Airflow's UI/REST that are not in the trail yet.

    With ``on_error`` a failure is reported there and 0 returned (reading the trail must not depend
    on Airflow's database); without it the failure is raised.
    """
    # adapters.listeners.airflow_log imports SQLAlchemy and reads Airflow's tables: only commands
    # that sync pay for it.
    from airflow_wfe.adapters.listeners.airflow_log import sync_airflow_log

    try:
        return sync_airflow_log(ctx.store)
    except Exception as exc:
        if on_error is None:
            raise
        on_error(f"changes made in Airflow not imported ({type(exc).__name__}: {exc})")
        return 0


def run_story(ctx: AppContext, dag_id: str, run_id: str) -> AuditStory:
    """Every audit event of one run, and whether each still matches its hash.

    Raises:
        RunNotFoundError: the trail holds no event of that run.
    """
    found = list(ctx.store.audit_events(dag_id=dag_id, run_id=run_id))
    if not found:
        raise RunNotFoundError(dag_id, run_id)
    return AuditStory(
        dag_id=dag_id,
        run_id=run_id,
        events=[_event(e) for e in found],
        hashes_match=all(body_hash(e.body) == e.hash for e in found),
    )


def verify_keys(ctx: AppContext, public_keys: Sequence[Path] = ()) -> Keyring:
    """Every key a verification accepts: ``public_keys``, the configured signing key, the keys of
    ``[wfe] audit_verify_keys``, and the embedded default key if (and only if) its file exists.

    Raises:
        ConfigError: a configured or given key cannot be read.
    """
    keys = Keyring(load_public_key(path) for path in public_keys)
    configured = load_signer(ctx.settings.audit_signing_key, _default_key_file(ctx))
    if isinstance(configured, GeneratedKey):
        found = configured.existing()
        if found is not None:
            keys.add(found)
    else:
        keys.add(configured)
    for spec in ctx.settings.audit_verify_keys:
        keys.add(load_verify_key(spec))
    return keys


def _default_key_file(ctx: AppContext) -> Path:
    return ctx.settings.airflow_home / "wfe_audit.key"


def write_signer(ctx: AppContext) -> Signer:
    """The key that signs checkpoints, archives and anchors (the embedded default is resolved by
    the store, which knows whether generating it is allowed)."""
    return load_signer(ctx.settings.audit_signing_key, _default_key_file(ctx))


def _report(record: VerifyRecord) -> VerifyReport:
    return VerifyReport(
        ok=record.ok,
        events=record.events,
        first_seq=record.first_seq,
        last_seq=record.last_seq,
        checkpoints=record.checkpoints,
        signatures_checked=record.signatures_checked,
        findings=[Finding(seq=f.seq, kind=f.kind, message=f.message) for f in record.findings],
        notes=list(record.notes),
    )


def verify(
    ctx: AppContext,
    *,
    since: datetime | None = None,
    archives: Sequence[Path] = (),
    public_keys: Sequence[Path] = (),
    signatures: bool = True,
    anchors: Path | None = None,
) -> AuditVerification:
    """Check the store's chain (from ``since``) and each archive file: hashes, links, signatures
    (``signatures=False``: hashes and links only, and the reports say so). Read-only."""
    keys = verify_keys(ctx, public_keys) if signatures else Keyring()
    reports = {
        str(p): _report(ctx.store.verify_audit_archive(p, keys, signatures=signatures))
        for p in archives
    }
    reports["store"] = _report(ctx.store.verify_audit(keys, since=since, signatures=signatures))
    if anchors is not None:
        reports[f"anchors {anchors}"] = _report(
            ctx.store.verify_audit_anchors(anchors, keys, signatures=signatures)
        )
    return AuditVerification(ok=all(r.ok for r in reports.values()), reports=reports)


@dataclass(frozen=True)
class AuditExport:
    """An export as text lines (each ending in a newline): the CSV header, if any, then one line per
    event, produced lazily so a large trail streams."""

    header: str | None
    lines: Iterator[str]


def _jsonl(events: Iterator[SealedEvent]) -> Iterator[str]:
    for event in events:
        # The stored body verbatim, so an external system can re-check every hash; the partition's
        # chain it links in (docs/audit.md), since each partition numbers its events from #1.
        content = {"body": event.body, "hash": event.hash, **event.content()}
        yield canonical_json({**content, "chain": event.chain}) + "\n"


def _csv_line(row: dict[str, Any]) -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore").writerow(row)
    return buffer.getvalue()


def _csv(events: Iterator[SealedEvent]) -> Iterator[str]:
    for event in events:
        row = {**event.content(), "prev_hash": event.prev_hash, "hash": event.hash}
        row["payload"] = canonical_json(row.get("payload", {}))
        row["versions"] = canonical_json(row.get("versions", {}))
        yield _csv_line(row)


def export(
    ctx: AppContext,
    *,
    fmt: Literal["jsonl", "csv"] = "jsonl",
    dag_id: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
) -> AuditExport:
    """The trail (or one DAG's, one run's, from ``since``) as JSON lines or CSV rows."""
    events = ctx.store.audit_events(dag_id=dag_id, run_id=run_id, since=since)
    if fmt == "jsonl":
        return AuditExport(header=None, lines=_jsonl(events))
    return AuditExport(header=_csv_line(dict(zip(CSV_COLUMNS, CSV_COLUMNS, strict=True))),
                       lines=_csv(events))  # fmt: skip


def checkpoint(ctx: AppContext, reason: str = "manual") -> CheckpointResult | None:
    """Sign a checkpoint at the chain's head now (``None``: the trail is empty)."""
    mark = ctx.store.audit_checkpoint(write_signer(ctx), reason)
    if mark is None:
        return None
    if ctx.settings.audit_anchor_dir is not None:
        anchor(ctx)
    return CheckpointResult(
        seq=mark.seq,
        hash=mark.hash,
        at=mark.at,
        algorithm=mark.algorithm,
        key_id=mark.key_id or "",
        signature=mark.signature or "",
    )


def anchor(ctx: AppContext, folder: Path | None = None) -> AnchorResult:
    """Write a signed anchor of the chain's head to ``folder`` (default ``[wfe]
    audit_anchor_dir``), outside the store; run it on a schedule, also when nothing happened.

    Raises:
        ConfigError: no folder given and none configured.
    """
    target = folder or ctx.settings.audit_anchor_dir
    if target is None:
        raise ConfigError("audit_anchor_dir", "", "no anchor folder: set it, or pass --to DIR")
    path, seq = ctx.store.audit_anchor(write_signer(ctx), target)
    return AnchorResult(path=str(path), seq=seq)


def archive(
    ctx: AppContext, *, older_than: timedelta, folder: Path, actor: str
) -> ArchiveResult | None:
    """Move events older than ``older_than`` to a signed archive file (``None``: none that old)."""
    cutoff = datetime.now(UTC) - older_than
    result = ctx.store.archive_audit(
        write_signer(ctx), older_than=cutoff, folder=folder, actor=actor, keys=verify_keys(ctx)
    )
    if result is None:
        return None
    return ArchiveResult(
        path=str(result.path),
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        events=result.events,
        sha256=result.sha256,
    )
