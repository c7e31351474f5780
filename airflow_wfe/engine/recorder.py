"""The one path for every state change: check, store (one transaction), then emit metrics.

Listeners, operators, the CLI and the REST API all call a :class:`Recorder`; nothing else writes the
store. The recorder turns a *fact* ("task X of run R is running, try 2") into a *plan* of state-machine
moves that is evaluated inside the store's transaction against the current state, so reporting the
same fact twice (HITL resumes, a listener racing the end-of-run reconciliation) writes it once.

The facts Airflow reports (a run started or ended, a step moved or reconciled) never wait on a sick
store longer than its bound, and are never lost: with ``fail_closed`` off, one the store cannot take
goes to the local spool (:mod:`airflow_wfe.engine.spool`, loaded only then) with its time and actor,
and is replayed through this same recorder later, in order (:meth:`Recorder.replay`). While the spool
holds facts written in the last :data:`~.spool_guard.SPOOL_HOLD_S` seconds, new facts join them without trying the
store; after that the next fact flushes the spool first (within :data:`~.spool_guard.HOOK_FLUSH_BUDGET_S`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from airflow_wfe.core.metrics import Emitter, names
from airflow_wfe.core.reconciliation import RECONCILABLE, needs_reconciling
from airflow_wfe.core.records import Move, TransitionRecord
from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE, RunState, StepState
from airflow_wfe.engine.spool_guard import (
    HOOK_FLUSH_BUDGET_S,
    SPOOL_HOLD_S,
    SpoolGuard,
    SpoolPlace,
    Superseded,
    replayed,
    replayed_step,
)
from airflow_wfe.engine.transition_metrics import emit_run_transitions, emit_step_transitions
from airflow_wfe.exceptions import IllegalTransitionError, StoreUnavailableError
from airflow_wfe.store.contract import RunPlan, StepPlan, Store

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import CompensationRequest, DecisionRecord
    from airflow_wfe.engine.preflight import PreflightResult

__all__ = [
    "RECONCILABLE",
    "Recorder",
    "RunStart",
    "SpoolPlace",
    "TaskStart",
    "needs_reconciling",
]


log = logging.getLogger("airflow_wfe.engine.recorder")

#: Reason recorded for VALIDATED when the run was first reported already under way, so no
#: pre-flight ran for it (a gate of an ungoverned DAG, a run whose start was spooled, a run end).
UNCHECKED_REASON = "no pre-flight ran: the run was first reported after it had started"

_UNSEEN: Final = object()


@dataclass(frozen=True)
class RunStart:
    """What a run-start report found: the transitions written and the run's state after it.

    Attributes:
        known: whether the store answered (``False``: the fact was spooled; ``state`` is ``None``).
        state: the run's state after the report (``None`` with ``known``: the run is not recorded).
    """

    written: list[TransitionRecord] = field(default_factory=list)
    state: RunState | None = None
    known: bool = False


@dataclass(frozen=True)
class TaskStart:
    """What a task's start report did (:meth:`Recorder.task_started`).

    Attributes:
        run: the run-start check's outcome, as :meth:`Recorder.start_run` reports it.
        step: the step's transitions written with it (``[]`` also when the fact was spooled);
            ``None``: the run was not under way, the step was not recorded (the caller runs the
            pre-flight or honours a rejection, then reports the step with :meth:`Recorder.step`).
    """

    run: RunStart
    step: list[TransitionRecord] | None


class Recorder(SpoolGuard):
    """Records run and step facts through a store and reports them as metrics.

    Args:
        store: where states and transitions are written.
        emitter: where metrics go (never raises).
        spool: where facts the store cannot take wait; ``None``: they raise (tools, tests).
        fail_closed: ``[wfe] fail_closed``: a fact the store cannot take raises instead of
            being spooled.
    """

    def __init__(
        self,
        store: Store,
        emitter: Emitter,
        *,
        spool: SpoolPlace | None = None,
        fail_closed: bool = False,
    ) -> None:
        self.store = store
        self.emitter = emitter
        self.spool = spool
        self.fail_closed = fail_closed
        #: per thread, the run state the last run plan saw (what :class:`RunStart` reports)
        self._seen = threading.local()

    # -- runs ----------------------------------------------------------------------------------

    def run_started(
        self,
        dag_id: str,
        run_id: str,
        *,
        actor: str,
        reason: str,
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
        preflight_pending: bool = False,
    ) -> list[TransitionRecord]:
        """The run is executing: bring it to RUNNING through CREATED and VALIDATED if needed.

        Reported by the scheduler when it starts the run and by every task as it starts, because
        ``airflow dags test`` never reports the run start and tasks may race the scheduler.
        With ``preflight_pending`` (a task that will run the pre-flight itself when no one has),
        a new run is only CREATED and a CREATED one left there: :meth:`run_preflight` moves it on.
        """
        return self.start_run(
            dag_id,
            run_id,
            actor=actor,
            reason=reason,
            facts=facts,
            at=at,
            preflight_pending=preflight_pending,
        ).written

    def start_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        actor: str,
        reason: str,
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
        preflight_pending: bool = False,
    ) -> RunStart:
        """:meth:`run_started`, also saying where the run stands (read in the same transaction)."""
        args = {"dag_id": dag_id, "run_id": run_id, "actor": actor, "reason": reason}
        more = {"facts": dict(facts) if facts else None, "preflight_pending": preflight_pending}
        self._seen.state = _UNSEEN
        written = self._guarded("run_started", {**args, **more}, at)
        return self._run_start(written)

    def task_started(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        *,
        actor: str,
        run_reason: str,
        step_reason: str,
        facts: Mapping[str, str | None] | None = None,
        map_index: int = -1,
        try_number: int | None = None,
        at: datetime | None = None,
    ) -> TaskStart:
        """A task starts: :meth:`start_run` (with ``preflight_pending``) and, when the run is under
        way, :meth:`step` to RUNNING, in one store transaction.

        Why: under a scheduler the run is RUNNING before any task starts, so the run-start check
        of every task writes at most the run's missing facts; as a transaction of its own it cost
        each task a second write (and a second wait for SQLite's write lock). The two facts stay
        two facts everywhere else: a store that cannot take them gets the same two spool entries,
        in the same order, as two calls would write (``run_started``, then ``step``), and they are
        replayed the same way; with ``fail_closed`` the error is raised.
        """
        run_args: dict[str, Any] = {
            "dag_id": dag_id,
            "run_id": run_id,
            "actor": actor,
            "reason": run_reason,
            "facts": dict(facts) if facts else None,
            "preflight_pending": True,
        }
        step_args: dict[str, Any] = {
            "dag_id": dag_id,
            "run_id": run_id,
            "step_id": step_id,
            "to_state": StepState.RUNNING,
            "actor": actor,
            "reason": step_reason,
            "map_index": map_index,
            "try_number": try_number,
        }
        spool = self.spool
        if spool is None:
            return self._task_started(run_args, step_args, at)
        # The same choices as SpoolGuard._guarded, for the two facts at once.
        when = at or datetime.now(UTC)
        age = self._spool_age()
        if age is not None:
            if not self.fail_closed and age < SPOOL_HOLD_S:
                return self._task_start_spooled(run_args, step_args, when, None)
            result = self.flush_spool(budget_s=HOOK_FLUSH_BUDGET_S)
            if not result.complete and not self.fail_closed:
                return self._task_start_spooled(run_args, step_args, when, None)
        try:
            return self._task_started(run_args, step_args, at)
        except StoreUnavailableError as exc:
            if self.fail_closed:
                raise
            return self._task_start_spooled(run_args, step_args, when, exc)

    def _task_start_spooled(
        self,
        run_args: Mapping[str, Any],
        step_args: Mapping[str, Any],
        when: datetime,
        cause: StoreUnavailableError | None,
    ) -> TaskStart:
        self._to_spool("run_started", run_args, when, cause)
        self._to_spool("step", step_args, when, None)
        return TaskStart(RunStart(), [])

    def _task_started(
        self, run_args: Mapping[str, Any], step_args: Mapping[str, Any], at: datetime | None
    ) -> TaskStart:
        dag_id, run_id, actor = run_args["dag_id"], run_args["run_id"], run_args["actor"]
        step_id, map_index = step_args["step_id"], step_args["map_index"]
        try_number = step_args["try_number"]
        try:
            outcome = self.store.advance_run_and_step(
                dag_id,
                run_id,
                self._start_plan(run_args["reason"], run_args["facts"], pending=True),
                step_id,
                map_index,
                _step_plan(StepState.RUNNING, step_args["reason"], try_number),
                step_if=_under_way,
                actor=actor,
                try_number=try_number,
                at=at,
                facts=run_args["facts"],
            )
        except IllegalTransitionError:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise
        if outcome.run:
            emit_run_transitions(self.store, self.emitter, dag_id, run_id, outcome.run, actor)
        if outcome.refused is not None:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise outcome.refused
        if outcome.step:
            emit_step_transitions(
                self.emitter, dag_id, run_id, step_id, map_index, outcome.step, actor, try_number
            )
        return TaskStart(RunStart(outcome.run, outcome.state, True), outcome.step)

    def run_preflight(
        self,
        dag_id: str,
        run_id: str,
        result: PreflightResult,
        *,
        actor: str,
        reason: str,
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
    ) -> RunStart:
        """A run's pre-flight: CREATED → VALIDATED → RUNNING when every check passed, CREATED →
        REJECTED otherwise, with the decision (kind ``preflight``, every check a reason) when start
        policies took part or the run is refused, in one transaction. Only a run not yet past
        CREATED moves: a pre-flight that lost the race to another writes nothing, and the state it
        found is reported.
        """
        args = {"dag_id": dag_id, "run_id": run_id, "actor": actor, "reason": reason}
        more = {"facts": dict(facts) if facts else None, "preflight": result.to_dict()}
        self._seen.state = _UNSEEN
        written = self._guarded("run_preflight", {**args, **more}, at)
        return self._run_start(written)

    def _run_start(self, written: list[TransitionRecord]) -> RunStart:
        seen = getattr(self._seen, "state", _UNSEEN)
        if written:
            return RunStart(written, RunState(written[-1].to_state), True)
        if seen is _UNSEEN:
            return RunStart(written, None, False)
        return RunStart(written, seen, True)  # type: ignore[arg-type]  # a RunState or None here

    def _run_preflight(
        self,
        dag_id: str,
        run_id: str,
        *,
        actor: str,
        reason: str,
        preflight: Mapping[str, Any],
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
        superseded: Superseded | None = None,
    ) -> list[TransitionRecord]:
        from airflow_wfe.engine.preflight import PREFLIGHT_STEP, PreflightResult

        result = PreflightResult.from_dict(preflight)
        run_type = (facts or {}).get("run_type")
        created = f"run created ({run_type})" if run_type else "run created"
        summary = result.summary()
        verdict = (
            [Move(RunState.VALIDATED, summary), Move(RunState.RUNNING, reason)]
            if result.passed
            else [Move(RunState.REJECTED, summary)]
        )

        def plan(current: RunState | None) -> Sequence[Move]:
            self._seen.state = current
            if current is None:
                return [Move(RunState.CREATED, created), *verdict]
            if current is RunState.CREATED:
                return verdict
            return []

        try:
            written = self.store.record_preflight(
                dag_id,
                run_id,
                outcome=result.outcome,
                reasons=result.decision_reasons(),
                policies=result.policies,
                actor=actor,
                run_plan=replayed(plan, superseded),
                details={"evaluated_at": result.evaluated_at, "checks": summary},
                facts=facts,
                step_id=PREFLIGHT_STEP,
                # A decision when start policies took part or the run is refused; a plain pass
                # is told by the VALIDATED transition's reason (every check and its outcome).
                with_decision=bool(result.policies) or not result.passed,
            )
        except IllegalTransitionError:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise
        if written:
            emit_run_transitions(self.store, self.emitter, dag_id, run_id, written, actor)
        return written

    def _run_started(
        self,
        dag_id: str,
        run_id: str,
        *,
        actor: str,
        reason: str,
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
        superseded: Superseded | None = None,
        preflight_pending: bool = False,
    ) -> list[TransitionRecord]:
        # A replayed start (it waited in the spool) had no pre-flight and none will follow: the
        # run moves on, its VALIDATED saying that no pre-flight ran.
        pending = preflight_pending and superseded is None
        plan = self._start_plan(reason, facts, pending=pending)
        return self._run(
            dag_id,
            run_id,
            replayed(plan, superseded),
            actor=actor,
            at=at,
            facts=facts,
        )

    def _start_plan(
        self, reason: str, facts: Mapping[str, str | None] | None, *, pending: bool
    ) -> RunPlan:
        """The plan of a run-start report (:meth:`run_started`); ``pending``: a pre-flight is to
        follow, so a new run is only CREATED and a CREATED one stays there."""
        run_type = (facts or {}).get("run_type")
        created = f"run created ({run_type})" if run_type else "run created"

        def plan(current: RunState | None) -> Sequence[Move]:
            self._seen.state = current
            if current is None:
                if pending:
                    return [Move(RunState.CREATED, created)]
                return [
                    Move(RunState.CREATED, created),
                    Move(RunState.VALIDATED, UNCHECKED_REASON),
                    Move(RunState.RUNNING, reason),
                ]
            if current is RunState.CREATED:
                if pending:
                    return []
                return [Move(RunState.VALIDATED, UNCHECKED_REASON), Move(RunState.RUNNING, reason)]
            if current is RunState.VALIDATED:
                return [Move(RunState.RUNNING, reason)]
            return []

        return plan

    def run_finished(
        self,
        dag_id: str,
        run_id: str,
        *,
        succeeded: bool,
        actor: str,
        reason: str,
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
    ) -> list[TransitionRecord]:
        """Airflow ended the run: COMPLETED or FAILED, through the states no one reported yet."""
        args = {"dag_id": dag_id, "run_id": run_id, "actor": actor, "reason": reason}
        facts_ = dict(facts) if facts else None
        return self._guarded("run_finished", {**args, "succeeded": succeeded, "facts": facts_}, at)

    def _run_finished(
        self,
        dag_id: str,
        run_id: str,
        *,
        succeeded: bool,
        actor: str,
        reason: str,
        facts: Mapping[str, str | None] | None = None,
        at: datetime | None = None,
        superseded: Superseded | None = None,
    ) -> list[TransitionRecord]:
        target = RunState.COMPLETED if succeeded else RunState.FAILED

        def plan(current: RunState | None) -> Sequence[Move]:
            if current is None or current in (RunState.CREATED, RunState.VALIDATED):
                path = RUN_MACHINE.path(current, target)
                return [
                    Move(state, reason if state is target else "reconciled at run end")
                    for state in path
                ]
            if current is target or current in RUN_MACHINE.terminal:
                return []
            if current in (RunState.FAILED, RunState.REJECTED, RunState.COMPENSATING):
                # Compensation owns the run from here on; the end of the Airflow run says nothing new.
                return []
            return [Move(target, reason)]

        return self._run(
            dag_id,
            run_id,
            replayed(plan, superseded),
            actor=actor,
            at=at,
            facts=facts,
        )

    def saga_started(
        self,
        dag_id: str,
        run_id: str,
        *,
        failed: Sequence[str],
        compensating: Sequence[str],
        irreversible: Sequence[str],
        actor: str,
    ) -> list[TransitionRecord]:
        """A step failed: the run is FAILED, and COMPENSATING when something must be undone.

        Idempotent, so a retried ``saga__begin`` writes nothing new.
        """
        failure = f"step(s) failed: {', '.join(failed)}" if failed else "no step failed"
        undo = compensating or irreversible
        parts = []
        if compensating:
            parts.append(f"undoing {', '.join(compensating)} in reverse order")
        if irreversible:
            parts.append(f"cannot undo irreversible {', '.join(irreversible)}")
        compensation = "; ".join(parts)

        def plan(current: RunState | None) -> Sequence[Move]:
            moves = []
            if current in (RunState.RUNNING, RunState.WAITING_APPROVAL):
                moves.append(Move(RunState.FAILED, failure))
                current = RunState.FAILED
            if current in (RunState.FAILED, RunState.REJECTED) and undo:
                moves.append(Move(RunState.COMPENSATING, compensation))
            return moves

        return self._run(dag_id, run_id, plan, actor=actor, at=None)

    def saga_finished(
        self, dag_id: str, run_id: str, *, succeeded: bool, reason: str, actor: str
    ) -> list[TransitionRecord]:
        """Compensation is over: COMPENSATED, or COMPENSATION_FAILED with what went wrong."""
        target = RunState.COMPENSATED if succeeded else RunState.COMPENSATION_FAILED

        def plan(current: RunState | None) -> Sequence[Move]:
            return [Move(target, reason)] if current is RunState.COMPENSATING else []

        return self._run(dag_id, run_id, plan, actor=actor, at=None)

    def transition_run(
        self,
        dag_id: str,
        run_id: str,
        to_state: RunState,
        *,
        actor: str,
        reason: str,
        at: datetime | None = None,
    ) -> list[TransitionRecord]:
        """One explicit move (gates, the CLI, the REST API). Illegal moves raise, nothing is written.

        Raises:
            IllegalTransitionError: ``to_state`` is not reachable from the run's current state.
        """
        return self._run(
            dag_id, run_id, lambda _current: [Move(to_state, reason)], actor=actor, at=at
        )

    def decision(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        *,
        kind: str,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        details: Mapping[str, Any] | None = None,
        move_to: RunState | None = None,
        reason: str | None = None,
    ) -> tuple[DecisionRecord, list[TransitionRecord]]:
        """A gate's decision or a person's answer, and the run's move to ``move_to`` it causes,
        written in one store transaction (both or neither), then reported as metrics.

        A run already in ``move_to`` stays where it is (a retried gate task); without ``move_to``
        the decision is recorded alone.

        Raises:
            IllegalTransitionError: the run cannot go to ``move_to`` from where it is; the refusal
                is audited and the decision is not written.
            RunNotFoundError: the run was never recorded.
        """

        def plan(current: RunState | None) -> Sequence[Move]:
            return [] if move_to is None or current is move_to else [Move(move_to, reason)]

        try:
            record, written = self.store.record_decision_and_advance(
                dag_id,
                run_id,
                step_id,
                kind=kind,
                outcome=outcome,
                reasons=reasons,
                policies=policies,
                actor=actor,
                run_plan=plan,
                details=details,
            )
        except IllegalTransitionError:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise
        if written:
            emit_run_transitions(self.store, self.emitter, dag_id, run_id, written, actor)
        return record, written

    def request_compensation(
        self,
        dag_id: str,
        run_id: str,
        *,
        actor: str,
        reason: str,
        force: bool = False,
        note: str | None = None,
    ) -> tuple[CompensationRequest, list[TransitionRecord]]:
        """A person asked to compensate the run: the request (a typed fact the saga reads) and the
        run's move to COMPENSATING, in one store transaction, then metrics.

        ``reason`` is the transition's reason; ``note`` the requester's own words.

        Raises:
            IllegalTransitionError: the run cannot go COMPENSATING from where it is (audited).
            RunNotFoundError: the run was never recorded.
        """
        try:
            request, written = self.store.request_compensation(
                dag_id,
                run_id,
                lambda _current: [Move(RunState.COMPENSATING, reason)],
                actor=actor,
                force=force,
                reason=note,
            )
        except IllegalTransitionError:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise
        emit_run_transitions(self.store, self.emitter, dag_id, run_id, written, actor)
        return request, written

    def _run(
        self,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        *,
        actor: str,
        at: datetime | None,
        facts: Mapping[str, str | None] | None = None,
    ) -> list[TransitionRecord]:
        try:
            written = self.store.advance_run(
                dag_id,
                run_id,
                plan,
                actor=actor,
                at=at,
                facts=facts,
            )
        except IllegalTransitionError:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise
        if written:
            emit_run_transitions(self.store, self.emitter, dag_id, run_id, written, actor)
        return written

    # -- steps ---------------------------------------------------------------------------------

    def step(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        to_state: StepState,
        *,
        actor: str,
        reason: str | None = None,
        map_index: int = -1,
        try_number: int | None = None,
        at: datetime | None = None,
    ) -> list[TransitionRecord]:
        """A step reached ``to_state`` as reported live by Airflow (a task listener).

        Idempotent: a repeated report is a no-op. A new try of a RUNNING step whose retry went
        unreported (the scheduler failed it) is recorded through RETRYING.

        Raises:
            IllegalTransitionError: the move breaks the state machine (nothing is written).
            RunNotFoundError: the run was never recorded.
        """
        args = {"dag_id": dag_id, "run_id": run_id, "step_id": step_id, "to_state": to_state}
        more = {"actor": actor, "reason": reason, "map_index": map_index, "try_number": try_number}
        return self._guarded("step", {**args, **more}, at)

    def _step_fact(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        to_state: StepState,
        *,
        actor: str,
        reason: str | None = None,
        map_index: int = -1,
        try_number: int | None = None,
        at: datetime | None = None,
        superseded: Superseded | None = None,
    ) -> list[TransitionRecord]:
        checked = replayed_step(_step_plan(to_state, reason, try_number), superseded, try_number)
        return self._step(dag_id, run_id, step_id, map_index, checked, actor, try_number, at)

    def reconcile_step(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        to_state: StepState,
        *,
        actor: str,
        reason: str,
        map_index: int = -1,
        try_number: int | None = None,
        at: datetime | None = None,
    ) -> list[TransitionRecord]:
        """Bring a step to the end state Airflow reports, through the states no listener saw.

        For tasks the scheduler skipped or marked upstream_failed without running them, and for
        end states whose listener never fired (a worker killed mid-task).
        """
        args = {"dag_id": dag_id, "run_id": run_id, "step_id": step_id, "to_state": to_state}
        more = {"actor": actor, "reason": reason, "map_index": map_index, "try_number": try_number}
        return self._guarded("reconcile_step", {**args, **more}, at)

    def _reconcile_step(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        to_state: StepState,
        *,
        actor: str,
        reason: str,
        map_index: int = -1,
        try_number: int | None = None,
        at: datetime | None = None,
        superseded: Superseded | None = None,
    ) -> list[TransitionRecord]:
        def plan(current: StepState | None, _current_try: int) -> Sequence[Move]:
            if not needs_reconciling(current, to_state):
                return []
            return [Move(state, reason) for state in STEP_MACHINE.path(current, to_state)]

        checked = replayed_step(plan, superseded, None)
        return self._step(dag_id, run_id, step_id, map_index, checked, actor, try_number, at)

    def recorded_step_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], StepState]:
        """The run's step states as the store holds them, for the end-of-run reconciliation.

        ``{}`` (nothing known) when facts of this store are waiting in the spool or the store
        cannot be reached and ``fail_closed`` is off: every step is then reconciled, and each
        reconciliation re-checks the step's state inside its own (possibly replayed) transaction.
        """
        if self.spool is not None and not self.fail_closed and self._spool_age() is not None:
            return {}
        try:
            return self.store.step_states(dag_id, run_id)
        except StoreUnavailableError:
            if self.spool is None or self.fail_closed:
                raise
            return {}

    def _step(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        map_index: int,
        plan: StepPlan,
        actor: str,
        try_number: int | None,
        at: datetime | None,
    ) -> list[TransitionRecord]:
        try:
            written = self.store.advance_step(
                dag_id,
                run_id,
                step_id,
                map_index,
                plan,
                actor=actor,
                try_number=try_number,
                at=at,
            )
        except IllegalTransitionError:
            self.emitter.incr(names.TRANSITIONS_REFUSED)  # the refusal itself is in the trail
            raise
        if written:
            emit_step_transitions(
                self.emitter, dag_id, run_id, step_id, map_index, written, actor, try_number
            )
        return written

    def _apply(
        self,
        op: str,
        args: Mapping[str, Any],
        at: datetime | None,
        superseded: Superseded | None = None,
    ) -> list[TransitionRecord]:
        methods: dict[str, Callable[..., list[TransitionRecord]]] = {
            "run_started": self._run_started,
            "run_preflight": self._run_preflight,
            "run_finished": self._run_finished,
            "step": self._step_fact,
            "reconcile_step": self._reconcile_step,
        }
        return methods[op](**args, at=at, superseded=superseded)


def _step_plan(to_state: StepState, reason: str | None, try_number: int | None) -> StepPlan:
    """The plan of a live step report (:meth:`Recorder.step`)."""

    def plan(current: StepState | None, current_try: int) -> Sequence[Move]:
        if current is None:
            if to_state is StepState.PENDING:
                return [Move(StepState.PENDING, reason)]
            return [Move(StepState.PENDING, "awaiting its first try"), Move(to_state, reason)]
        if current is to_state:
            new_try = try_number is not None and try_number > current_try
            if to_state is StepState.RUNNING and new_try:
                return [
                    Move(StepState.RETRYING, "retry reported by Airflow"),
                    Move(StepState.RUNNING, reason),
                ]
            return []
        return [Move(to_state, reason)]

    return plan


#: Run states in which a starting task's step is recorded with the run-start check: the run is
#: under way, so the check has nothing to do but fill facts (:meth:`Recorder.task_started`).
_UNDER_WAY: Final = frozenset(RunState) - {
    RunState.CREATED,
    RunState.VALIDATED,
    RunState.REJECTED,
}


def _under_way(state: RunState | None) -> bool:
    return state in _UNDER_WAY
