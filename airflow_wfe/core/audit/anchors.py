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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from airflow_wfe.core.audit.canonical import canonical_json
from airflow_wfe.core.audit.signing import Keyring, Signer, anchor_message

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

    def signed_fields(self) -> dict[str, Any]:
        data = asdict(self)
        del data["signature"]
        return data


def make_anchor(signer: Signer, seq: int, hash_: str, at: str, prev: str | None) -> str:
    """The text of a new anchor (one canonical JSON line)."""
    fields = {
        "format": ANCHOR_FORMAT,
        "seq": seq,
        "hash": hash_,
        "at": at,
        "prev": prev,
        "algorithm": signer.algorithm,
        "key_id": signer.key_id,
    }
    return canonical_json({**fields, "signature": signer.sign(anchor_message(fields))}) + "\n"


def parse_anchor(text: str) -> Anchor:
    """Raises: ValueError: not an anchor."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
        raise ValueError(f"not a {ANCHOR_FORMAT} document")
    return Anchor(**data)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_anchors(
    anchors: Sequence[tuple[str, str]],
    keys: Keyring | None,
    *,
    event_hash: Callable[[int], str | None],
    archived_up_to: int,
    last_seq: int,
) -> tuple[list[tuple[int | None, str, str]], list[str]]:
    """Compare the store with every anchor: ``anchors`` are (name, text) pairs; ``event_hash``
    gives the stored hash at a position (``None``: no such event); the store holds events up to
    ``last_seq`` and has archived those up to ``archived_up_to``.

    Returns (findings as (seq, kind, message), notes). The first finding of kind ``truncated`` or
    ``erased`` names the last anchored position that is gone.
    """
    findings: list[tuple[int | None, str, str]] = []
    notes: list[str] = []
    parsed: list[tuple[str, Anchor, str]] = []
    for name, text in anchors:
        try:
            parsed.append((name, parse_anchor(text), text_hash(text)))
        except (ValueError, TypeError):
            findings.append((None, "anchor unreadable", f"{name} is not a signed anchor"))
    known = {digest for _n, _a, digest in parsed}
    gone: tuple[str, Anchor] | None = None
    for name, anchor, _digest in sorted(parsed, key=lambda p: (p[1].seq, p[1].at)):
        if keys is not None:
            problem = keys.check(
                anchor.key_id, anchor_message(anchor.signed_fields()), anchor.signature
            )
            if problem is not None:
                findings.append(
                    (anchor.seq, problem, f"anchor {name}: its signature does not hold ({problem})")
                )
                continue
        if anchor.prev is not None and anchor.prev not in known:
            findings.append(
                (
                    anchor.seq,
                    "anchor missing",
                    f"the anchor before {name} is missing from the folder",
                )
            )
        if anchor.seq == 0 or anchor.seq <= archived_up_to:
            continue
        stored = event_hash(anchor.seq) if anchor.seq <= last_seq else None
        if stored is None:
            gone = (name, anchor)
        elif stored != anchor.hash:
            findings.append(
                (
                    anchor.seq,
                    "rolled back",
                    f"event #{anchor.seq} differs from the one anchored at {anchor.at} ({name}): "
                    "the store was rewritten or rolled back to another history",
                )
            )
    if gone is not None:
        name, anchor = gone
        kind = "erased" if last_seq == 0 and archived_up_to == 0 else "truncated"
        findings.insert(
            0,
            (
                anchor.seq,
                kind,
                f"the last anchored position, event #{anchor.seq} (anchored at {anchor.at}, "
                f"{name}), is gone: the store ends at #{last_seq}",
            ),
        )
    notes.append(f"{len(parsed)} anchor(s) compared with the store")
    return findings, notes
