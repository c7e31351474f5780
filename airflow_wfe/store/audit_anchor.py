"""Anchor files in a folder outside the store: written next to the previous one, read back in order.

See :mod:`airflow_wfe.core.audit.anchors` for what an anchor is. Each anchor is its own file
(``wfe-anchor-<seq>-<time>.json``), written to a temporary name and renamed, so a folder on an
append-only or object store mount never holds half an anchor, and an existing file is never rewritten.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

from airflow_wfe.core.audit.anchors import make_anchor, parse_anchor, text_hash
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


def write_anchor(folder: Path, signer: Signer, seq: int, hash_: str, at: str) -> Path:
    """Write a signed anchor of position (``seq``, ``hash_``) at time ``at``, chained to the latest
    anchor already in ``folder``.

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
            if latest is None or (anchor.seq, anchor.at) >= latest[0]:
                latest = ((anchor.seq, anchor.at), text)
        prev = None if latest is None else text_hash(latest[1])
    text = make_anchor(signer, seq, hash_, at, prev)
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
