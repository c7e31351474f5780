"""Verifying a store's trail: every partition's chain, the tree heads over them, in one snapshot or in
parallel.

A partitioned trail (:mod:`airflow_wfe.core.audit.partitions`) is checked in three steps. First, in one
read-only snapshot, the *plan*: which partitions exist (head rows, events, archive records), every
signed tree head (its signature, its root) and what the valid ones vouch for. A partition that a tree
head names but the store no longer has, and a partition other than ``main`` that no tree head names,
are findings here. Then each partition's chain is verified like a chain of its own (hashes, links,
checkpoints, its signed head), also against the positions the tree heads vouch for; on a long trail
with several partitions this runs in worker processes, one read-only snapshot each (chains only grow,
so a later snapshot still holds every position an earlier one vouched for). Last, the state tables are
replayed against the events.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, func, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from airflow_wfe.core.audit.anchors import check_anchors
from airflow_wfe.core.audit.canonical import format_time
from airflow_wfe.core.audit.partitions import MAIN, chain_order, genesis_hash, tree_root
from airflow_wfe.core.audit.signing import Keyring, Signer, tree_message
from airflow_wfe.core.audit.verify import ARCHIVE_MARK, Finding, Verifier, VerifyReport
from airflow_wfe.exceptions import StoreUnavailableError
from airflow_wfe.store.audit_projections import check_projections
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import masked_url, parse_url
from airflow_wfe.store.tables import (
    audit_archive_table,
    audit_checkpoint_table,
    audit_event_table,
    audit_head_table,
    audit_tree_table,
)

__all__ = ["read_only_connection", "verify_anchors", "verify_chain", "verify_trail"]

#: Below this many events a trail is verified in the calling process (starting workers costs more).
PARALLEL_FROM: Final = 50_000


@dataclass
class TrailPlan:
    """What the snapshot says before any chain is read: the partitions to verify, the positions
    valid tree heads vouch for, and the findings about the partitions themselves."""

    chains: list[str]
    #: chain -> {seq: hash} vouched for by valid tree heads.
    marks: dict[str, dict[int, str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    #: Events the heads say the partitions hold (to decide whether workers pay off).
    size: int = 0
    #: The same by partition (to share the partitions out evenly among the workers).
    sizes: dict[str, int] = field(default_factory=dict)
    trees: int = 0
    archived: bool = False


def _keyring(keys: Keyring | Signer | None) -> Keyring | None:
    if keys is None or isinstance(keys, Keyring):
        return keys
    return Keyring([keys])


def plan_trail(
    connection: Connection, keys: Keyring | Signer | None, *, signatures: bool = True
) -> TrailPlan:
    """Read the partitions and the tree heads, and check what can be checked without the events."""
    heads = AuditLog.heads(connection)
    present = set(heads) | AuditLog.event_chains(connection) | {MAIN}
    plan = TrailPlan(chains=sorted(present, key=chain_order))
    plan.sizes = {chain: h.seq for chain, h in heads.items()}
    plan.size = sum(plan.sizes.values())
    plan.archived = (
        connection.execute(select(audit_archive_table.c.id).limit(1)).first() is not None
    )
    keyring = _keyring(keys) if signatures else None
    named: dict[str, tuple[int, str]] = {}
    for tree, row_id in AuditLog.tree_heads(connection):
        plan.trees += 1
        if tree is None:
            plan.findings.append(
                Finding(None, "edited", f"tree head {row_id}: its partition list is not readable")
            )
            continue
        if tree_root(tree.heads) != tree.root:
            plan.findings.append(
                Finding(
                    None,
                    "edited",
                    f"tree head {row_id} ({tree.at}): its partition list does not match its root",
                )
            )
            continue
        if keyring:
            problem = keyring.check(tree.key_id, tree_message(tree.root, tree.at), tree.signature)
            if problem is not None:
                kind = "bad signature" if problem == "bad signature" else problem
                plan.findings.append(
                    Finding(
                        None,
                        kind,
                        f"tree head {row_id} ({tree.at}): its signature does not "
                        f"hold ({problem}); it vouches for nothing",
                    )
                )
                continue
        for head in tree.heads:
            named.setdefault(head.chain, (head.seq, tree.at))
            if head.seq > 0:
                plan.marks.setdefault(head.chain, {})[head.seq] = head.hash
            if head.seq > named[head.chain][0]:
                named[head.chain] = (head.seq, tree.at)
    for chain, (seq, at) in sorted(named.items(), key=lambda item: chain_order(item[0])):
        if chain not in present:
            plan.findings.append(
                Finding(
                    None,
                    "partition missing",
                    f"the signed tree head of {at} names partition {chain} (at #{seq}), but the "
                    "store holds neither its head nor its events: the partition was deleted",
                    chain,
                )
            )
    for chain in plan.chains:
        if chain != MAIN and chain not in named and signatures:
            plan.findings.append(
                Finding(
                    None,
                    "unregistered partition",
                    f"partition {chain} is in the store, but no valid signed tree head names it "
                    "(every partition's first event writes one): the partition was inserted, or "
                    "the tree heads were deleted",
                    chain,
                )
            )
    return plan


def parallel_workers(plan: TrailPlan) -> int:
    """How many worker processes verify the partitions (1: the calling process does)."""
    if plan.size < PARALLEL_FROM or len(plan.chains) < 2 or "fork" not in _start_methods():
        return 1
    return max(1, min(len(plan.chains), len(os.sched_getaffinity(0)), 8))


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


#: What forked workers inherit (keys hold objects that cannot be pickled, e.g. HMAC state).
_JOB: dict[str, Any] = {}


def _verify_in_worker(chains: list[str]) -> list[VerifyReport]:
    job = _JOB
    with read_only_connection(job["url"]) as connection:
        return [
            verify_chain(
                connection,
                chain,
                job["keys"],
                since=job["since"],
                signatures=job["signatures"],
                marks=job["marks"].get(chain, {}),
            )
            for chain in chains
        ]


def share_out(plan: TrailPlan, workers: int) -> list[list[str]]:
    """The partitions in ``workers`` groups of about the same number of events (largest first,
    each to the lightest group): one task per worker, so a worker opens the store and compiles
    its statements once, not once per partition, and none waits on a last large partition."""
    groups: list[list[str]] = [[] for _ in range(max(1, workers))]
    loads = [0] * len(groups)
    for chain in sorted(plan.chains, key=lambda c: -plan.sizes.get(c, 0)):
        lightest = loads.index(min(loads))
        groups[lightest].append(chain)
        loads[lightest] += plan.sizes.get(chain, 0)
    return [group for group in groups if group]


def verify_in_parallel(
    url: str,
    plan: TrailPlan,
    keys: Keyring | Signer | None,
    since: datetime | None,
    signatures: bool,
    workers: int,
) -> list[VerifyReport]:
    """The partitions' chains verified in forked workers, each worker's share in a read-only
    snapshot of its own (see :func:`share_out`); reports in the plan's partition order."""
    _JOB.update(url=url, keys=keys, since=since, signatures=signatures, marks=plan.marks)
    groups = share_out(plan, workers)
    try:
        with ProcessPoolExecutor(max_workers=len(groups), mp_context=get_context("fork")) as pool:
            results = list(pool.map(_verify_in_worker, groups))
    finally:
        _JOB.clear()
    by_chain = {
        chain: report
        for group, reports in zip(groups, results, strict=True)
        for chain, report in zip(group, reports, strict=True)
    }
    return [by_chain[chain] for chain in plan.chains]


def merge_reports(
    plan: TrailPlan, reports: Sequence[VerifyReport], *, signatures: bool
) -> VerifyReport:
    """One report for the whole trail: the plan's findings, then each partition's."""
    if len(reports) == 1 and not plan.findings and plan.chains == [MAIN]:
        return reports[0]
    merged = VerifyReport(signatures_checked=all(r.signatures_checked for r in reports))
    merged.findings = list(plan.findings)
    spans = []
    for chain, report in zip(plan.chains, reports, strict=True):
        merged.events += report.events
        merged.checkpoints += report.checkpoints
        merged.findings += report.findings
        for note in report.notes:
            if note not in merged.notes:
                merged.notes.append(note)
        if report.first_seq is not None:
            merged.first_seq = min(merged.first_seq or report.first_seq, report.first_seq)
            merged.last_seq = max(merged.last_seq or 0, report.last_seq or 0)
            spans.append(f"{chain} #{report.first_seq}..#{report.last_seq}")
    if len(plan.chains) > 1:
        merged.notes.append(
            f"{len(plan.chains)} partitions ({', '.join(spans) or 'no events'}), "
            f"{plan.trees} tree head(s)"
        )
    if not signatures:
        merged.signatures_checked = False
    return merged


def verify_chain(
    connection: Connection,
    chain: str,
    keys: Keyring | Signer | None,
    *,
    since: datetime | None = None,
    signatures: bool = True,
    marks: Mapping[int, str] | None = None,
) -> VerifyReport:
    """Verify one partition's chain readable through ``connection``: its archive records, events,
    checkpoints and signed head, and the positions ``marks`` (seq -> hash) that signed tree heads
    vouch for."""
    archives = AuditLog.archives(connection, chain)
    head = AuditLog.head(connection, chain)
    start_seq, prev_hash = 1, genesis_hash(chain)
    if archives:
        start_seq, prev_hash = archives[-1].seq + 1, archives[-1].hash
    checkpoints = AuditLog.checkpoints(connection, chain, from_seq=start_seq)
    verifier = Verifier(
        start_seq=start_seq,
        prev_hash=prev_hash,
        checkpoints=checkpoints,
        keys=keys,
        signatures=signatures,
        anchored=since is None,
        chain=chain,
        marks={s: h for s, h in (marks or {}).items() if s >= start_seq},
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
            f"events up to #{archives[-1].seq}{_of(chain)} are archived (verify the file with "
            "--archive)"
        )
    for rows in AuditLog.stream_rows(
        connection, chain, since=None if since is None else format_time(since)
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


def _of(chain: str) -> str:
    return "" if chain == MAIN else f" of partition {chain}"


def verify_trail(
    connection: Connection,
    keys: Keyring | Signer | None,
    *,
    since: datetime | None = None,
    signatures: bool = True,
    url: str | None = None,
) -> VerifyReport:
    """Verify the trail readable through ``connection`` (one snapshot: see
    :func:`read_only_connection`): the tree heads, then every partition's chain (in parallel
    processes, each in a read-only snapshot of its own, when ``url`` is given and the trail is
    long enough to gain from it), then the state tables against the events."""
    plan = plan_trail(connection, keys, signatures=signatures)
    workers = parallel_workers(plan) if url is not None else 1
    if url is not None and workers > 1:
        reports = verify_in_parallel(url, plan, keys, since, signatures, workers)
    else:
        reports = [
            verify_chain(
                connection,
                chain,
                keys,
                since=since,
                signatures=signatures,
                marks=plan.marks.get(chain, {}),
            )
            for chain in plan.chains
        ]
    report = merge_reports(plan, reports, signatures=signatures)
    if since is None and not plan.archived:
        check_projections(connection, report)
    elif since is None:
        report.notes.append("state tables not replayed: the trail's early events are archived")
    return report


def verify_anchors(
    connection: Connection,
    anchors: Sequence[tuple[str, str]],
    keys: Keyring | Signer | None,
    *,
    signatures: bool = True,
) -> VerifyReport:
    """Compare the trail readable through ``connection`` with ``anchors`` ((file name, text)
    pairs, as :func:`~airflow_wfe.store.audit_anchor.read_anchors` reads them from a folder): a
    truncated, rolled back or erased store (or partition) is named by the last anchored position
    that is gone, with its partition."""
    keyring = _keyring(keys) if signatures else None
    if signatures and keyring is None:
        keyring = Keyring()
    report = VerifyReport(signatures_checked=bool(keyring))
    chains = set(AuditLog.heads(connection)) | AuditLog.event_chains(connection)
    archived: dict[str, int] = {}
    last: dict[str, int] = {}
    for chain in chains:
        marks = AuditLog.archives(connection, chain)
        archived[chain] = marks[-1].seq if marks else 0
        last[chain] = int(
            connection.execute(
                select(func.max(audit_event_table.c.seq)).where(audit_event_table.c.chain == chain)
            ).scalar()
            or 0
        )

    def event_hash(chain: str, seq: int) -> str | None:
        found = connection.execute(
            select(audit_event_table.c.hash).where(
                audit_event_table.c.chain == chain, audit_event_table.c.seq == seq
            )
        ).scalar()
        return None if found is None else str(found)

    findings, notes = check_anchors(
        anchors, keyring, event_hash=event_hash, archived_up_to=archived, last_seq=last
    )
    if signatures and not keyring:
        findings.insert(0, Finding(None, "no key", "no key to check the anchors' signatures with"))
    report.findings = findings
    report.notes = notes
    report.checkpoints = len(anchors)
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
    audit_tree_table.name,
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
