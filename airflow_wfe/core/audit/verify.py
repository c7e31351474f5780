"""Checking a chain: every event's hash, every link, every signature, and the signed head.

Pure and streaming: the verifier is fed one stored event at a time (from the database, or from an
archive file) and keeps only the previous hash, so memory stays flat however long the trail. What it
detects, and how it names it:

* an edited event: its body no longer hashes to its stored hash, or its query columns disagree with
  its body;
* a deleted event: a gap in the sequence numbers;
* reordered events: an event's body names another position, or its ``prev`` is not the hash before it;
* a rewritten chain (every hash recomputed after an edit): a signed checkpoint or the signed head no
  longer matches, and forging those needs the signing key;
* a truncated tail: the signed head (or a checkpoint) names events that are no longer there;
* a missing, unsigned or foreign head, an archive record without a valid signature, a signature of
  one kind (checkpoint, head, archive) copied into the row of another: each is a finding, because a
  verification *fails closed*: what cannot be shown to be signed does not count as signed.

Without a key nothing can be shown to be signed: the report says "not verified" (a finding, so the
CLI exits 1), unless the caller asked for hashes only (``signatures=False``), which the report says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, Final, NamedTuple, Protocol

from airflow_wfe.core.audit.events import HEADER_PREFIX, body_hash, header, parse_body
from airflow_wfe.core.audit.partitions import MAIN
from airflow_wfe.core.audit.signing import (
    Keyring,
    Signer,
    archive_message,
    checkpoint_message,
    head_message,
)

__all__ = [
    "NOT_VERIFIED_KINDS",
    "ROW_COLUMNS",
    "Checkpoint",
    "Finding",
    "Head",
    "StoredEvent",
    "StoredRow",
    "Verifier",
    "VerifyReport",
]

#: Findings kept after the first one (the first bad event is what matters; the rest is context).
_MAX_FINDINGS: Final = 50
#: Quoted header tails :meth:`Verifier.feed_rows` keeps (cleared when full).
_TAILS: Final = 4096
_COLUMNS: Final = ("at", "type", "actor", "dag_id", "run_id", "step_id")
#: Finding kinds that mean "could not be shown to hold" rather than "shown not to hold".
NOT_VERIFIED_KINDS: Final = frozenset({"no key", "unknown key"})


_HEX: Final = frozenset("0123456789abcdef")
#: What :meth:`Verifier.check_signature` is told it checks (also the words of its findings).
HEAD_MARK: Final = "chain head"
CHECKPOINT_MARK: Final = "checkpoint"
ARCHIVE_MARK: Final = "archive record"


def _is_hex_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


class StoredRow(NamedTuple):
    """A stored event as a plain tuple of its columns, in :data:`ROW_COLUMNS` order."""

    seq: int
    at: str
    type: str
    actor: str
    dag_id: str | None
    run_id: str | None
    step_id: str | None
    body: str
    prev_hash: str
    hash: str


#: The columns :meth:`Verifier.feed_rows` expects, in order.
ROW_COLUMNS: Final = StoredRow._fields


class StoredEvent(Protocol):
    """An event as read back: a database row, a :class:`SealedEvent` or a line of an archive."""

    @property
    def seq(self) -> int: ...

    @property
    def at(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def actor(self) -> str: ...

    @property
    def dag_id(self) -> str | None: ...

    @property
    def run_id(self) -> str | None: ...

    @property
    def step_id(self) -> str | None: ...

    @property
    def body(self) -> str: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement "the event at ``seq`` has hash ``hash``" (periodic, manual or archive)."""

    seq: int
    hash: str
    at: str
    algorithm: str
    key_id: str | None
    signature: str | None
    #: For an archive's mark: the first event the archive holds (its signature covers it).
    first_seq: int | None = None


@dataclass(frozen=True)
class Head:
    """The chain's signed head: the last sequence number and hash written through the chain."""

    seq: int
    hash: str
    at: str
    algorithm: str | None
    key_id: str | None
    signature: str | None


@dataclass(frozen=True)
class Finding:
    """One problem: the first event it concerns (``None`` for the head) and what is wrong."""

    seq: int | None
    kind: str
    message: str
    #: The partition's chain it concerns (``main``: the one chain of an unpartitioned store).
    chain: str = MAIN

    def __str__(self) -> str:
        where = f"event #{self.seq}" if self.seq is not None else "chain head"
        if self.chain != MAIN:
            where = f"partition {self.chain}, {where}"
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class VerifyReport:
    """What a verification saw and found."""

    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    signatures_checked: bool = True
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def status(self) -> str:
        """``OK``, ``NOT VERIFIED`` (only key problems: nothing could be shown either way) or
        ``BROKEN``."""
        if not self.findings:
            return "OK"
        if all(f.kind in NOT_VERIFIED_KINDS for f in self.findings):
            return "NOT VERIFIED"
        return "BROKEN"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "signatures_checked": self.signatures_checked,
            "findings": [
                {"seq": f.seq, "kind": f.kind, "message": f.message, "chain": f.chain}
                for f in self.findings
            ],
            "notes": list(self.notes),
        }


class Verifier:
    """Feeds on stored events in sequence order and reports what does not hold.

    Args:
        start_seq: the sequence number the stream must begin with.
        prev_hash: the hash the first event must point back to (genesis, or an archive's last hash).
        checkpoints: signed checkpoints by sequence number.
        keys: the keys signatures are checked with (a :class:`Keyring`, or one key); ``None`` or an
            empty keyring with ``signatures`` on is a "not verified" finding.
        signatures: ``False`` checks hashes and links only (and the report says so).
        anchored: whether ``start_seq``/``prev_hash`` are known facts (a full verification) or just
            where a ``--since`` window begins (its first event is then trusted as a starting point).
        chain: the partition's chain verified (its marks sign its name; see
            :mod:`~airflow_wfe.core.audit.partitions`).
        marks: positions (seq -> hash) of this chain that valid signed tree heads vouch for.
    """

    def __init__(
        self,
        *,
        start_seq: int,
        prev_hash: str,
        checkpoints: Mapping[int, Checkpoint],
        keys: Keyring | Signer | None,
        signatures: bool = True,
        anchored: bool = True,
        chain: str = MAIN,
        marks: Mapping[int, str] | None = None,
    ) -> None:
        self.chain = chain
        self.marks = dict(marks or {})
        #: Positions the fast path of :meth:`feed_rows` leaves to :meth:`feed`.
        self.stops = set(checkpoints) | set(self.marks)
        #: :meth:`feed_rows`'s quoted header tails, by their columns (bounded: see _TAILS).
        self._tails: dict[tuple[Any, ...], str] = {}
        self.expected = start_seq
        self.prev_hash = prev_hash
        self.checkpoints = checkpoints
        self.keys = keys if isinstance(keys, Keyring) or keys is None else Keyring([keys])
        self.signatures = signatures
        self.anchored = anchored
        self.report = VerifyReport(signatures_checked=signatures and bool(self.keys))
        if not signatures:
            self.report.notes.append(
                "hashes and links only (--no-signatures): no signature was checked, so a chain "
                "rewritten or cut back by someone with write access to the store would pass"
            )
        elif not self.keys:
            self.add_finding(
                None,
                "no key",
                "no key to check signatures with: configure [wfe] audit_signing_key or "
                "audit_verify_keys, or pass --public-key (--no-signatures checks hashes only)",
            )
        else:
            self.report.notes.append(f"signatures checked with key(s) {self.keys.describe()}")
        for checkpoint in checkpoints.values():
            self.check_signature(checkpoint, CHECKPOINT_MARK)

    def add_finding(self, seq: int | None, kind: str, message: str) -> None:
        if len(self.report.findings) < _MAX_FINDINGS:
            self.report.findings.append(Finding(seq, kind, message, self.chain))

    def check_signature(self, mark: Checkpoint | Head, what: str) -> bool:
        """Whether ``mark`` carries a valid signature of its kind (``what``: chain head, checkpoint
        or archive record) for its own position; a finding when not. Always ``True`` when
        signatures are not checked."""
        if not self.signatures or not self.keys:
            return not self.signatures
        chain = self.chain
        if what == HEAD_MARK:
            message = head_message(mark.seq, mark.hash, mark.at, chain)
        elif what == ARCHIVE_MARK:
            first = getattr(mark, "first_seq", None)
            message = archive_message(first if first is not None else -1, mark.seq, mark.hash,
                                      mark.at, chain)  # fmt: skip
        else:
            message = checkpoint_message(mark.seq, mark.hash, mark.at, chain)
        problem = self.keys.check(mark.key_id, message, mark.signature)
        if problem is None:
            return True
        where = None if what == HEAD_MARK else mark.seq
        if problem == "unsigned":
            self.add_finding(where, "unsigned", f"the {what} at #{mark.seq} carries no signature")
        elif problem == "unknown key":
            self.add_finding(
                where,
                "unknown key",
                f"the {what} at #{mark.seq} is signed with key {mark.key_id}, which is not among "
                f"the keys given ({self.keys.describe()}); add it to [wfe] audit_verify_keys",
            )
        else:
            self.add_finding(
                where,
                "bad signature",
                f"the {what} at #{mark.seq} does not carry a valid {what} signature for its "
                "position (forged, altered, or copied from another record)",
            )
        return False

    def feed(self, event: StoredEvent) -> None:
        """Check one event (events must come in increasing ``seq``)."""
        report = self.report
        seq = int(event.seq)
        if report.first_seq is None:
            report.first_seq = seq
            if not self.anchored:
                self.expected, self.prev_hash = seq, event.prev_hash
        report.events += 1
        if seq < self.expected:
            self._late(event, seq)
            return
        report.last_seq = seq
        linked = True
        if seq > self.expected:
            missing = (
                f"#{self.expected}" if seq == self.expected + 1 else f"#{self.expected}..#{seq - 1}"
            )
            self.add_finding(self.expected, "deleted", f"event(s) {missing} missing before #{seq}")
            linked = False
        digest = body_hash(event.body)
        if digest != event.hash:
            self.add_finding(seq, "edited", "its content does not match its hash")
        self._check_body(event, seq)
        if linked and event.prev_hash != self.prev_hash:
            self.add_finding(
                seq,
                "broken link",
                f"it does not point back to event #{seq - 1} (reordered, inserted, or an earlier "
                "event was replaced)",
            )
        checkpoint = self.checkpoints.get(seq)
        if checkpoint is not None:
            report.checkpoints += 1
            if checkpoint.hash != event.hash:
                self.add_finding(
                    seq, "rewritten", "it differs from the signed checkpoint taken at its place"
                )
        vouched = self.marks.get(seq)
        if vouched is not None and vouched != event.hash:
            self.add_finding(
                seq,
                "rolled back",
                "it differs from the event a signed tree head recorded at its place (the "
                "partition was rewritten or rolled back to another history)",
            )
        self.prev_hash = event.hash
        self.expected = seq + 1

    def _late(self, event: StoredEvent, seq: int) -> None:
        """An event whose position the stream has passed (a line moved later in an archive file,
        a copy of an event, or an event inside what an archive record says left the store): named
        at its own position, replacing the gap its absence was taken for; the chain goes on from
        the event before it."""
        findings = self.report.findings
        findings[:] = [f for f in findings if not (f.kind == "deleted" and f.seq == seq)]
        self.add_finding(
            seq,
            "reordered",
            f"it comes after event #{self.expected - 1} (out of order, a copy, or inside what an "
            "archive record says was archived)",
        )
        if body_hash(event.body) != event.hash:
            self.add_finding(seq, "edited", "its content does not match its hash")

    def feed_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Check stored events given as tuples of :data:`ROW_COLUMNS` (database rows as fetched).

        The same checks as :meth:`feed`. A version-2 event whose links, header and hash hold is
        checked without leaving this loop: its header is rebuilt from the columns and compared with
        the start of its body as text, then the body is hashed; anything else (a version-1 body, a
        checkpoint, the first event, any problem) goes through :meth:`feed`, which names it.
        """
        sha256 = hashlib.sha256
        quote = encode_basestring
        stops = self.stops
        feed = self.feed
        report = self.report
        expected, prev = self.expected, self.prev_hash
        # Whether ``prev`` is a 64-hex-digit hash (then it needs no quoting in the header): the first
        # event goes through feed(), and so does the one after a stored hash that is not hex.
        hex_prev = False
        fast = 0
        # The header's quoted tail by its five columns: a trail repeats few combinations of type,
        # actor, DAG, run and step, and quoting five texts per row cost more than a lookup.
        tails = self._tails
        for row in rows:
            seq, at, type_, actor, dag_id, run_id, step_id, body, prev_hash, hash_ = row
            if hex_prev and seq == expected and prev_hash == prev and seq not in stops:
                key = (type_, actor, dag_id, run_id, step_id)
                tail = tails.get(key)
                if tail is None:
                    if len(tails) >= _TAILS:
                        tails.clear()
                    tail = tails[key] = (
                        f"{quote(type_)},{quote(actor)},"
                        f"{'null' if dag_id is None else quote(dag_id)},"
                        f"{'null' if run_id is None else quote(run_id)},"
                        f"{'null' if step_id is None else quote(step_id)}]{{"
                    )
                if (
                    body.startswith(f'[2,{seq},"{prev_hash}",{quote(at)},{tail}')
                    and sha256(body.encode()).hexdigest() == hash_
                ):
                    prev = hash_
                    expected = seq + 1
                    fast += 1
                    continue
            if fast:
                report.events += fast
                report.last_seq = expected - 1
                fast = 0
            self.expected, self.prev_hash = expected, prev
            feed(StoredRow(*row))
            expected, prev = self.expected, self.prev_hash
            hex_prev = _is_hex_digest(prev)
        if fast:
            report.events += fast
            report.last_seq = expected - 1
        self.expected, self.prev_hash = expected, prev

    def _check_body(self, event: StoredEvent, seq: int) -> None:
        if event.body.startswith(HEADER_PREFIX):
            self._check_header(event, seq)
            return
        try:
            body = json.loads(event.body)
        except ValueError:
            self.add_finding(seq, "edited", "its body is not valid JSON")
            return
        if not isinstance(body, dict):
            self.add_finding(seq, "edited", "its body is not a JSON object")
            return
        if body.get("seq") != seq:
            self.add_finding(seq, "reordered", f"its body says it is event #{body.get('seq')}")
        if body.get("prev") != event.prev_hash:
            self.add_finding(seq, "edited", "its previous-hash column differs from its body")
        for column in _COLUMNS:
            if body.get(column) != getattr(event, column):
                self.add_finding(seq, "edited", f"its {column!r} column differs from its body")
                break

    def _check_header(self, event: StoredEvent, seq: int) -> None:
        """A version-2 body: its header must be exactly the one its columns make."""
        try:
            body = parse_body(event.body)
        except ValueError:
            self.add_finding(seq, "edited", "its body is not a valid version-2 body")
            return
        if body.get("seq") != seq:
            self.add_finding(seq, "reordered", f"its body says it is event #{body.get('seq')}")
            return
        if body.get("prev") != event.prev_hash:
            self.add_finding(seq, "edited", "its previous-hash column differs from its body")
            return
        for column in _COLUMNS:
            if body.get(column) != getattr(event, column):
                self.add_finding(seq, "edited", f"its {column!r} column differs from its body")
                return
        expected = header(
            seq,
            event.prev_hash,
            event.at,
            event.type,
            event.actor,
            event.dag_id,
            event.run_id,
            event.step_id,
        )
        if not event.body.startswith(expected + "{"):
            self.add_finding(seq, "edited", "its body's header is not in canonical form")

    def finish(self, head: Head | None, *, expect_head: bool = True) -> VerifyReport:
        """Check the end of the stream against the signed head and the checkpoints past it.

        ``expect_head``: the stream comes from a store, whose trail must end at a signed head (an
        archive file ends at its own signed mark instead). A store without a head row, with an
        unsigned head, or with a head whose signature does not hold, is broken: nothing then
        vouches for where the trail ends.
        """
        report = self.report
        last = self.expected - 1
        beyond = sorted(s for s in self.checkpoints if s > last)
        if beyond:
            self.add_finding(
                last + 1,
                "truncated",
                f"a signed checkpoint covers event #{beyond[-1]}, but the trail ends at #{last}",
            )
        vouched = max((s for s in self.marks if s > last), default=None)
        if vouched is not None and not beyond:
            self.add_finding(
                last + 1,
                "truncated",
                f"a signed tree head records event #{vouched}, but the chain ends at #{last} "
                "(cut back, or rolled back to an older copy)",
            )
        if head is None:
            if expect_head:
                self.add_finding(
                    None,
                    "head missing",
                    "the store has no chain head row (wfe_audit_head): nothing vouches for where "
                    f"the trail ends ({report.events} event(s) present); its tail may have been "
                    "cut or the whole chain rewritten",
                )
            return self._in_order()
        if head.seq > 0 or report.events:
            if head.signature is None and self.signatures:
                self.add_finding(None, "unsigned", "the chain head carries no signature")
            else:
                self.check_signature(head, HEAD_MARK)
        if head.seq > last:
            self.add_finding(
                last + 1,
                "truncated",
                f"event(s) #{last + 1}..#{head.seq} missing: the signed head says the trail "
                f"ends at #{head.seq}",
            )
        elif head.seq < last:
            self.add_finding(
                head.seq + 1,
                "not chained",
                f"event(s) #{head.seq + 1}..#{last} were written outside the chain (the head "
                f"ends at #{head.seq})",
            )
        elif report.events and head.hash != self.prev_hash:
            self.add_finding(last, "rewritten", "it differs from the signed chain head")
        return self._in_order()

    def _in_order(self) -> VerifyReport:
        """The report with its findings in chain order, so the first one names the first bad
        entry: by position, then the chain head's own (missing, unsigned, forged), which stands
        at the chain's end. Findings are added as they are seen (the checkpoints' and archive
        records' signatures before any event), so a partition swapped with another would
        otherwise be named at its first checkpoint rather than at its first event."""
        self.report.findings.sort(key=lambda f: (f.seq is None, f.seq or 0))
        return self.report

    def run(self, events: Iterable[StoredEvent], head: Head | None) -> VerifyReport:
        """Feed every event, then :meth:`finish`."""
        for event in events:
            self.feed(event)
        return self.finish(head)
