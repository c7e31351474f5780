"""Anchor files in a folder outside the store: written next to the previous one, read back in order.

See :mod:`airflow_wfe.core.audit.anchors` for what an anchor is. Each anchor is its own file
(``wfe-anchor-<seq>-<time>.json``), written to a temporary name and renamed, so a folder on an
append-only or object store mount never holds half an anchor, and an existing file is never rewritten.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from airflow_wfe.core.audit.anchors import make_anchor, parse_anchor, text_hash
from airflow_wfe.core.audit.partitions import PartitionHead
from airflow_wfe.core.audit.signing import Signer
from airflow_wfe.exceptions import AuditError

__all__ = ["read_anchors", "write_anchor"]

_PATTERN: Final = "wfe-anchor-*.json"


def read_anchors(folder: Path) -> list[tuple[str, str]]:
    """Every anchor file in ``folder`` as (name, text), in name order.

    Raises:
        AuditError: the folder cannot be read.
    """
    if not folder.is_dir():
        raise AuditError(str(folder), "no such anchor folder")
    try:
        return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.glob(_PATTERN))]
    except OSError as exc:
        raise AuditError(str(folder), f"cannot read the anchors: {exc.strerror}") from None


def write_anchor(folder: Path, signer: Signer, at: str, *, heads: Sequence[PartitionHead]) -> Path:
    """Write a signed anchor of every partition's position in ``heads`` at time ``at``, chained to
    the latest anchor already in ``folder``.

    Raises:
        AuditError: the folder cannot be written.
    """
    prev = None
    if folder.is_dir():
        latest = None
        for _name, text in read_anchors(folder):
            try:
                anchor = parse_anchor(text)
            except (ValueError, TypeError):
                continue
            if latest is None or (anchor.at, anchor.seq) >= latest[0]:
                latest = ((anchor.at, anchor.seq), text)
        prev = None if latest is None else text_hash(latest[1])
    text = make_anchor(signer, heads, at, prev)
    seq = sum(h.seq for h in heads)
    stamp = at.replace(":", "").replace("-", "").replace(".", "")
    path = folder / f"wfe-anchor-{seq:012d}-{stamp}.json"
    temporary = folder / f".{path.name}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.link(temporary, path)  # fails rather than overwrite an existing anchor
    except OSError as exc:
        raise AuditError(str(path), f"cannot write the anchor: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return path
