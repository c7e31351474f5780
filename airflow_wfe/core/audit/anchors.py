"""External anchors: signed statements of the chain's position kept *outside* the store.

The signed head proves the trail to whoever trusts the store's latest state; someone with write
access can still roll the whole store back to an earlier signed state, or erase it. An anchor, like a
CloudTrail digest file, is a small signed document written somewhere they cannot write (a mounted
volume, an object store path): "at time T the chain stood at #N with hash H", chained to the anchor
before it. Anchors are written at explicit ``wfe audit anchor`` runs (on a schedule, also when no event
happened) and ``wfe audit checkpoint``; verification compares the store with each of them.

Pure: the texts are read and written by the caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from airflow_wfe.core.audit.canonical import canonical_json
from airflow_wfe.core.audit.partitions import (
    MAIN,
    PartitionHead,
    genesis_hash,
    parse_heads,
    sorted_heads,
)
from airflow_wfe.core.audit.signing import Keyring, Signer, anchor_message
from airflow_wfe.core.audit.verify import Finding

__all__ = ["ANCHOR_FORMAT", "Anchor", "check_anchors", "make_anchor", "parse_anchor"]

ANCHOR_FORMAT: Final = "wfe-audit-anchor/1"


@dataclass(frozen=True)
class Anchor:
    """One signed statement of the chain's position."""

    format: str
    seq: int
    hash: str
    at: str
    #: SHA-256 of the previous anchor's text (``None`` for the first one in its folder).
    prev: str | None
    algorithm: str
    key_id: str
    signature: str
    #: The other partitions' positions, ``[[chain, seq, hash], ...]`` (absent: ``main`` only).
    partitions: list[list[Any]] | None = None

    def signed_fields(self) -> dict[str, Any]:
        data = asdict(self)
        del data["signature"]
        if data["partitions"] is None:  # an unpartitioned anchor signs exactly the old fields
            del data["partitions"]
        return data

    def positions(self) -> list[PartitionHead]:
        """Every chain position this anchor vouches for, ``main`` first.

        Raises:
            ValueError: its partition list is malformed.
        """
        found = [PartitionHead(MAIN, self.seq, self.hash)]
        if self.partitions is not None:
            found += parse_heads(canonical_json(self.partitions))
        return found


def make_anchor(signer: Signer, heads: Sequence[PartitionHead], at: str, prev: str | None) -> str:
    """The text of a new anchor (one canonical JSON line) of every partition's head in ``heads``
    (``main``'s as ``seq``/``hash``, the others as ``partitions``)."""
    main = next((h for h in heads if h.chain == MAIN), PartitionHead(MAIN, 0, genesis_hash(MAIN)))
    others = [[h.chain, h.seq, h.hash] for h in sorted_heads(heads) if h.chain != MAIN]
    fields: dict[str, Any] = {
        "format": ANCHOR_FORMAT,
        "seq": main.seq,
        "hash": main.hash,
        "at": at,
        "prev": prev,
        "algorithm": signer.algorithm,
        "key_id": signer.key_id,
    }
    if others:
        fields["partitions"] = others
    return canonical_json({**fields, "signature": signer.sign(anchor_message(fields))}) + "\n"


def parse_anchor(text: str) -> Anchor:
    """Raises: ValueError: not an anchor."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
        raise ValueError(f"not a {ANCHOR_FORMAT} document")
    return Anchor(**data)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _where(chain: str, seq: int) -> str:
    return f"event #{seq}" if chain == MAIN else f"partition {chain}, event #{seq}"


def check_anchors(
    anchors: Sequence[tuple[str, str]],
    keys: Keyring | None,
    *,
    event_hash: Callable[[str, int], str | None],
    archived_up_to: Mapping[str, int],
    last_seq: Mapping[str, int],
) -> tuple[list[Finding], list[str]]:
    """Compare the store with every anchor: ``anchors`` are (name, text) pairs; ``event_hash``
    gives the stored hash at a chain's position (``None``: no such event); each chain holds events
    up to ``last_seq[chain]`` and has archived those up to ``archived_up_to[chain]``.

    Returns (findings, notes). The first finding of kind ``truncated`` or ``erased`` names the last
    anchored position that is gone, and its partition (``chain``); a finding about an anchor file
    itself (unreadable, unsigned, missing predecessor) is ``main``'s.
    """
    findings: list[Finding] = []
    notes: list[str] = []
    parsed: list[tuple[str, Anchor, str]] = []
    for name, text in anchors:
        try:
            parsed.append((name, parse_anchor(text), text_hash(text)))
        except (ValueError, TypeError):
            findings.append(Finding(None, "anchor unreadable", f"{name} is not a signed anchor"))
    known = {digest for _n, _a, digest in parsed}
    gone: tuple[str, Anchor, PartitionHead] | None = None
    for name, anchor, _digest in sorted(parsed, key=lambda p: (p[1].at, p[1].seq)):
        if keys is not None:
            problem = keys.check(
                anchor.key_id, anchor_message(anchor.signed_fields()), anchor.signature
            )
            if problem is not None:
                findings.append(
                    Finding(
                        anchor.seq,
                        problem,
                        f"anchor {name}: its signature does not hold ({problem})",
                    )
                )
                continue
        if anchor.prev is not None and anchor.prev not in known:
            findings.append(
                Finding(
                    anchor.seq,
                    "anchor missing",
                    f"the anchor before {name} is missing from the folder",
                )
            )
        try:
            positions = anchor.positions()
        except ValueError:
            findings.append(
                Finding(None, "anchor unreadable", f"{name}: its partition list is malformed")
            )
            continue
        for position in positions:
            chain, seq = position.chain, position.seq
            if seq == 0 or seq <= archived_up_to.get(chain, 0):
                continue
            stored = event_hash(chain, seq) if seq <= last_seq.get(chain, 0) else None
            if stored is None:
                gone = (name, anchor, position)
            elif stored != position.hash:
                findings.append(
                    Finding(
                        seq,
                        "rolled back",
                        f"{_where(chain, seq)} differs from the one anchored at {anchor.at} "
                        f"({name}): the store was rewritten or rolled back to another history",
                        chain,
                    )
                )
    if gone is not None:
        name, anchor, position = gone
        empty = not any(last_seq.values()) and not any(archived_up_to.values())
        kind = "erased" if empty else "truncated"
        ends = last_seq.get(position.chain, 0)
        findings.insert(
            0,
            Finding(
                position.seq,
                kind,
                f"the last anchored position, {_where(position.chain, position.seq)} (anchored at "
                f"{anchor.at}, {name}), is gone: "
                + (
                    f"the store ends at #{ends}"
                    if position.chain == MAIN
                    else f"partition {position.chain} ends at #{ends}"
                ),
                position.chain,
            ),
        )
    notes.append(f"{len(parsed)} anchor(s) compared with the store")
    return findings, notes
