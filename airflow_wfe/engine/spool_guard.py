"""How the recorder keeps reported facts when the store cannot take them (see :mod:`.recorder`).

:class:`SpoolGuard` is the part of the :class:`~airflow_wfe.engine.recorder.Recorder` that decides,
per fact, between the store and the local spool, replays spooled facts through the recorder's own
plans, and flushes. Kept apart so the recorder reads as the one path of every state change; the
spool's file handling (:mod:`.spool`) is imported only when a fact is spooled or replayed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from airflow_wfe.core.metrics import Emitter, names
from airflow_wfe.core.records import Move, TransitionRecord
from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE, RunState, StepState
from airflow_wfe.exceptions import StoreUnavailableError
from airflow_wfe.store.contract import RunPlan, StepPlan, Store

if TYPE_CHECKING:
    from airflow_wfe.engine.spool import FlushResult

__all__ = [
    "HOOK_FLUSH_BUDGET_S",
    "SPOOL_HOLD_S",
    "SpoolGuard",
    "SpoolPlace",
    "Superseded",
    "replayed",
    "replayed_step",
]

log = logging.getLogger("airflow_wfe.engine.recorder")

#: While the spool holds facts this recent (seconds), new facts join them without trying the store.
SPOOL_HOLD_S: Final = 5.0
#: How long a hook may spend replaying the spool before its own fact (seconds); the rest waits.
HOOK_FLUSH_BUDGET_S: Final = 2.0


@dataclass(frozen=True)
class SpoolPlace:
    """Where this process spools facts for its store.

    Attributes:
        file: this host's spool file for this store.
        max_bytes: ``[wfe] spool_max_mb`` in bytes.
        store: the store's URL, password masked (written into each entry, shown by status).
    """

    file: Path
    max_bytes: int
    store: str


class Superseded:
    """Set by a replayed fact's plan when the store already holds a later state."""

    __slots__ = ("hit",)

    def __init__(self) -> None:
        self.hit = False


class SpoolGuard:
    """The recorder's spool half; the recorder provides ``_apply`` (a fact applied to the store)."""

    store: Store
    emitter: Emitter
    spool: SpoolPlace | None
    fail_closed: bool

    if TYPE_CHECKING:  # provided by the Recorder this mixes into; declared for the type checker

        def _apply(
            self,
            op: str,
            args: Mapping[str, Any],
            at: datetime | None,
            superseded: Superseded | None = None,
        ) -> list[TransitionRecord]: ...

    def _guarded(
        self, op: str, args: dict[str, Any], at: datetime | None
    ) -> list[TransitionRecord]:
        """Apply a reported fact, or spool it when the store cannot take it (module docstring)."""
        spool = self.spool
        if spool is None:
            return self._apply(op, args, at)
        when = at or datetime.now(UTC)
        age = self._spool_age()
        if age is not None:
            if not self.fail_closed and age < SPOOL_HOLD_S:
                return self._to_spool(op, args, when, None)
            result = self.flush_spool(budget_s=HOOK_FLUSH_BUDGET_S)
            if not result.complete and not self.fail_closed:
                return self._to_spool(op, args, when, None)
        try:
            return self._apply(op, args, at)
        except StoreUnavailableError as exc:
            if self.fail_closed:
                raise
            return self._to_spool(op, args, when, exc)

    def _spool_age(self) -> float | None:
        """Seconds since the spool was last appended to, or ``None`` when it is empty."""
        assert self.spool is not None
        try:
            info = os.stat(self.spool.file)
        except FileNotFoundError:
            return None
        if info.st_size == 0:
            return None
        return max(0.0, time.time() - info.st_mtime)

    def _to_spool(
        self,
        op: str,
        args: Mapping[str, Any],
        when: datetime,
        cause: StoreUnavailableError | None,
    ) -> list[TransitionRecord]:
        from airflow_wfe.engine import spool as spool_file
        from airflow_wfe.exceptions import SpoolFullError

        assert self.spool is not None
        safe = dict(args)
        if safe.get("reason"):
            # Secrets never reach the local disk either: the store would redact them on replay.
            safe["reason"] = self.store.audit.redactor.text(str(safe["reason"]))
        try:
            spool_file.append(
                self.spool.file,
                op=op,
                at=when,
                args=safe,
                store=self.spool.store,
                max_bytes=self.spool.max_bytes,
            )
        except SpoolFullError:
            self.emitter.incr(names.SPOOL_FULL)
            raise
        self.emitter.incr(names.SPOOL_WRITTEN)
        if cause is not None:
            log.info(
                "wfe: %s of %s/%s spooled to %s (%s)",
                op,
                args.get("dag_id"),
                args.get("run_id"),
                self.spool.file,
                cause,
            )
        return []

    def replay(self, entry: Mapping[str, Any]) -> str:
        """Write one spooled fact through the same plans, with its original time and actor.

        Returns ``"written"``, ``"already"`` (the store holds it: a replay after a crash, or a
        write whose commit was not acknowledged) or ``"superseded"`` (the store already moved the
        run or step past it, e.g. another host reconciled it at the run's end: the move is not
        made, and no refusal is audited).
        """
        args = dict(entry["args"])
        if "to_state" in args:
            args["to_state"] = StepState(args["to_state"])
        at = datetime.fromisoformat(str(entry["at"]))
        superseded = Superseded()
        written = self._apply(str(entry["op"]), args, at, superseded)
        if superseded.hit:
            self.emitter.incr(names.SPOOL_SUPERSEDED)
            return "superseded"
        self.emitter.incr(names.SPOOL_REPLAYED)
        return "written" if written else "already"

    def flush_spool(self, *, budget_s: float | None = None) -> FlushResult:
        """Replay this host's spool for this store, in order (``wfe spool flush``, hooks).

        Without a ``budget_s`` (an explicit flush) the store is tried at once, even if it timed
        out moments ago in this process.
        """
        from airflow_wfe.engine import spool as spool_file

        if self.spool is None:
            return spool_file.FlushResult()
        if budget_s is None:
            from airflow_wfe.store.engine import clear_down

            clear_down()
        return spool_file.flush(self.spool.file, self.replay, budget_s=budget_s)


def replayed(plan: RunPlan, superseded: Superseded | None) -> RunPlan:
    """For a replayed fact: a plan the run has moved past makes no move instead of a refusal."""
    if superseded is None:
        return plan

    def checked(current: RunState | None) -> Sequence[Move]:
        superseded.hit = False  # a plan is evaluated again when its transaction is retried
        moves = list(plan(current))
        walk = current
        for move in moves:
            if not RUN_MACHINE.is_legal(walk, RunState(move.to_state)):
                superseded.hit = True
                return []
            walk = RunState(move.to_state)
        return moves

    return checked


def replayed_step(
    plan: StepPlan, superseded: Superseded | None, try_number: int | None
) -> StepPlan:
    """For a replayed step fact: a later try or a state it cannot reach supersedes it."""
    if superseded is None:
        return plan

    def checked(current: StepState | None, current_try: int) -> Sequence[Move]:
        superseded.hit = False  # a plan is evaluated again when its transaction is retried
        if try_number is not None and current_try > try_number:
            superseded.hit = True
            return []
        moves = list(plan(current, current_try))
        walk = current
        for move in moves:
            if not STEP_MACHINE.is_legal(walk, StepState(move.to_state)):
                superseded.hit = True
                return []
            walk = StepState(move.to_state)
        return moves

    return checked
