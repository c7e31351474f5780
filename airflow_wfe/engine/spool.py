"""The local spool: transitions the store could not take, kept on this host until it can.

With ``[wfe] fail_closed = False`` a fact the recorder cannot write (the store timed out, refused the
connection, is read-only) is appended here instead of being lost, and replayed later through the
recorder, in order, by the next hook that reaches the store or by ``wfe spool flush``
(docs/reliability.md). Imported only on that path: a healthy store never loads this module.

Layout: one JSON-lines file per host and store (``<host>__<store key>.jsonl`` in ``[wfe]
spool_path``), appended under an exclusive ``flock`` with one ``write`` and an ``fsync`` per fact, so
a crash loses at most the line being written (a torn last line is detected and dropped). A flush
holds a second lock (one flusher per file; a hook that finds it taken appends instead of waiting),
replays entries in file order and records how far it got in ``<file>.done`` after each one, so a
crash mid-flush resumes where it stopped. Replaying the same entry twice writes nothing the second
time: the recorder's plans are evaluated in the store's transaction against the current state, and
a replayed fact the store has already moved past is dropped as superseded
(:meth:`~airflow_wfe.engine.recorder.Recorder.replay`). An entry the store refuses for another
reason is moved to ``<file>.rejected`` with the error, so it never blocks the ones after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from airflow_wfe.exceptions import SpoolError, SpoolFullError, StoreError

__all__ = [
    "FORMAT",
    "FlushResult",
    "SpoolFile",
    "append",
    "entries",
    "flush",
    "pending_for_run",
    "status",
]

log = logging.getLogger("airflow_wfe.spool")

#: Version of the line format; a line of another version is rejected with its file and line.
FORMAT: Final = 1


@dataclass(frozen=True)
class FlushResult:
    """What one flush did.

    Attributes:
        replayed: entries written to the store (or found already there).
        superseded: entries dropped because the store already held a later state.
        rejected: entries the store refused for another reason (moved to ``<file>.rejected``).
        remaining: entries still waiting.
        busy: another process was flushing this file; nothing was done.
        error: why the flush stopped early (the store is still unavailable), if it did.
    """

    replayed: int = 0
    superseded: int = 0
    rejected: int = 0
    remaining: int = 0
    busy: bool = False
    error: str | None = None

    @property
    def complete(self) -> bool:
        """Nothing is left in the spool for this store."""
        return not self.busy and self.remaining == 0


@dataclass(frozen=True)
class SpoolFile:
    """One spool file as ``wfe spool status`` shows it."""

    path: Path
    host: str
    store: str
    pending: int
    size: int
    oldest: str | None
    newest: str | None
    runs: dict[str, int] = field(default_factory=dict)


def _done_path(path: Path) -> Path:
    return path.with_name(path.name + ".done")


@contextlib.contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); yields False when not
    ``blocking`` and another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _ensure_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpoolError(str(path.parent), f"cannot create the spool folder: {exc}") from exc


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, str):
        return str(value)  # a StrEnum member becomes its plain value
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value)


def append(
    path: Path,
    *,
    op: str,
    at: datetime,
    args: Mapping[str, Any],
    store: str,
    max_bytes: int,
) -> str:
    """Append one fact, fsynced before returning; returns its spool id.

    Raises:
        SpoolFullError: the file is at ``max_bytes``; the fact is not written.
        SpoolError: the folder or file cannot be written.
    """
    _ensure_folder(path)
    spool_id = uuid.uuid4().hex
    line = (
        json.dumps(
            {
                "v": FORMAT,
                "id": spool_id,
                "op": op,
                "at": at.isoformat(),
                "store": store,
                "host": os.uname().nodename,
                "pid": os.getpid(),
                "args": _encode(args),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        + "\n"
    ).encode()
    try:
        with _locked(path.with_name(path.name + ".lock")):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size + len(line) > max_bytes:
                    raise SpoolFullError(str(path), size, max_bytes)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if size == 0:
                # A new file's directory entry must reach the disk too, or a crash can lose it.
                folder = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
    except OSError as exc:
        raise SpoolError(str(path), f"cannot append: {exc}") from exc
    return spool_id


def _read_done(path: Path) -> int:
    try:
        text = _done_path(path).read_text().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text.isdigit() else 0


def _write_done(path: Path, offset: int) -> None:
    done = _done_path(path)
    temporary = done.with_name(done.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{offset}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, done)


def _parse(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except ValueError as exc:
        raise SpoolError(f"{path}:{number}", f"not a JSON line ({exc})") from None
    if not isinstance(entry, dict) or entry.get("v") != FORMAT or "op" not in entry:
        raise SpoolError(
            f"{path}:{number}", f"not a spool entry of format {FORMAT} (keys v, id, op, at, args)"
        )
    return entry


def entries(path: Path, start: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(end offset, entry)`` of each complete line from ``start`` (default: what is not
    replayed yet); a torn last line (no newline) is not yielded.

    Raises:
        SpoolError: a line is not a spool entry (file and line named).
    """
    offset = _read_done(path) if start is None else start
    try:
        whole = path.read_bytes()
    except FileNotFoundError:
        return
    data = whole[offset:]
    number = whole[:offset].count(b"\n")  # so an error names the file's own line number
    position = offset
    for raw in data.split(b"\n")[:-1]:
        number += 1
        position += len(raw) + 1
        if raw.strip():
            yield position, _parse(path, number, raw)


def flush(
    path: Path, apply: Callable[[dict[str, Any]], str], *, budget_s: float | None = None
) -> FlushResult:
    """Replay the file's entries in order through ``apply`` (which returns ``"written"``,
    ``"already"`` or ``"superseded"``), until the file is empty, the store fails again, or
    ``budget_s`` runs out; the file is emptied once everything in it is replayed."""
    if not path.exists():
        return FlushResult()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    replayed = superseded = rejected = 0
    error: str | None = None
    with _locked(path.with_name(path.name + ".flush"), blocking=False) as held:
        if not held:
            return FlushResult(remaining=count_pending(path), busy=True)
        while error is None:
            progressed = False
            for end, entry in entries(path):
                if deadline is not None and time.monotonic() > deadline:
                    error = f"time budget of {budget_s:g} s spent"
                    break
                try:
                    outcome = apply(entry)
                except StoreError as exc:
                    error = str(exc)
                    break
                except Exception as exc:  # noqa: BLE001 - one bad entry must not block the rest
                    _reject(path, entry, exc)
                    rejected += 1
                else:
                    if outcome == "superseded":
                        superseded += 1
                    else:
                        replayed += 1
                _write_done(path, end)
                progressed = True
            if error is not None or not progressed:
                break
        if error is None:
            _truncate_if_replayed(path)
    return FlushResult(replayed, superseded, rejected, count_pending(path), False, error)


def _truncate_if_replayed(path: Path) -> None:
    """Empty the file when every line in it is replayed (under the append lock, so no fact
    appended meanwhile is lost); a torn last line left by a crash is dropped with a warning."""
    with _locked(path.with_name(path.name + ".lock")):
        done = _read_done(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size > done:
            with path.open("rb") as handle:
                handle.seek(done)
                rest = handle.read()
            if b"\n" in rest:
                return  # appended while we replayed: the next flush takes it
            log.warning("wfe spool %s: dropping a torn last line (%d bytes)", path, len(rest))
        os.truncate(path, 0)
        _write_done(path, 0)


def _reject(path: Path, entry: Mapping[str, Any], exc: BaseException) -> None:
    log.error(
        "wfe spool %s: the store refused entry %s (%s %s/%s): %s: %s; kept in %s.rejected",
        path,
        entry.get("id"),
        entry.get("op"),
        (entry.get("args") or {}).get("dag_id"),
        (entry.get("args") or {}).get("run_id"),
        type(exc).__name__,
        exc,
        path.name,
    )
    record = {**entry, "error": f"{type(exc).__name__}: {exc}"}
    with path.with_name(path.name + ".rejected").open("a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def count_pending(path: Path) -> int:
    """How many entries of the file are not replayed yet."""
    return sum(1 for _ in entries(path))


def pending_for_run(path: Path, dag_id: str, run_id: str) -> int:
    """How many entries still waiting in the file are about this run."""
    return sum(
        1
        for _, entry in entries(path)
        if (entry.get("args") or {}).get("dag_id") == dag_id
        and (entry.get("args") or {}).get("run_id") == run_id
    )


def status(folder: Path) -> list[SpoolFile]:
    """Every spool file in ``folder`` (all hosts and stores), with what still waits in it."""
    found: list[SpoolFile] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.jsonl")):
        host, _, _key = path.stem.partition("__")
        pending = list(entries(path))
        runs: dict[str, int] = {}
        for _, entry in pending:
            args = entry.get("args") or {}
            key = f"{args.get('dag_id')}/{args.get('run_id')}"
            runs[key] = runs.get(key, 0) + 1
        found.append(
            SpoolFile(
                path=path,
                host=host,
                store=str(pending[0][1].get("store", "")) if pending else "",
                pending=len(pending),
                size=path.stat().st_size,
                oldest=str(pending[0][1].get("at")) if pending else None,
                newest=str(pending[-1][1].get("at")) if pending else None,
                runs=runs,
            )
        )
    return found
