"""Run and step states, and the one table of legal transitions.

The table is data on purpose: the recorder, the CLI, the docs renderer and the property-based tests
all read the same mapping, so a transition is legal in exactly one place. Nothing here touches a
store or Airflow; persisting a state is the recorder's job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from airflow_wfe.exceptions import IllegalTransitionError

__all__ = [
    "RUN_MACHINE",
    "STEP_MACHINE",
    "RunState",
    "StateMachine",
    "StepState",
]


class RunState(StrEnum):
    """The life of one governed DAG run."""

    CREATED = "CREATED"
    VALIDATED = "VALIDATED"
    RUNNING = "RUNNING"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    REJECTED = "REJECTED"


class StepState(StrEnum):
    """The life of one step (an Airflow task instance, one per map index)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    #: Airflow's ``upstream_failed``: the step never ran because something it needs failed. Kept
    #: apart from SKIPPED because a skip is a decision and this is a consequence of a failure.
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


S = TypeVar("S", RunState, StepState)


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    """A finite state machine given as ``{from_state: {to_state, ...}}``.

    Attributes:
        entity: what the machine describes (``"run"`` or ``"step"``), used in error messages.
        initial: the state every entity is created in.
        transitions: every legal move; a state with no entry (or an empty set) is terminal.
    """

    entity: str
    initial: S
    transitions: Mapping[S, frozenset[S]]
    #: Moves only a person makes deliberately (e.g. ``wfe compensate --force``): legal, but never
    #: taken by reconciliation (:meth:`path`), and a state left only this way still counts as terminal.
    manual: frozenset[tuple[S, S]] = frozenset()

    @property
    def states(self) -> frozenset[S]:
        """Every state that appears in the table."""
        found: set[S] = {self.initial}
        for source, targets in self.transitions.items():
            found.add(source)
            found.update(targets)
        return frozenset(found)

    @property
    def terminal(self) -> frozenset[S]:
        """States nothing leaves on its own (only a deliberate manual move may)."""
        return frozenset(s for s in self.states if not self.automatic(s))

    def automatic(self, state: S | None) -> frozenset[S]:
        """The states reachable in one move from ``state`` without a manual move."""
        return frozenset(
            target for target in self.allowed(state) if (state, target) not in self.manual
        )

    def allowed(self, state: S | None) -> frozenset[S]:
        """The states reachable in one move from ``state`` (``None``: not created yet)."""
        if state is None:
            return frozenset({self.initial})
        return self.transitions.get(state, frozenset()) | frozenset(
            target for source, target in self.manual if source == state
        )

    def is_legal(self, from_state: S | None, to_state: S) -> bool:
        """Whether one move from ``from_state`` to ``to_state`` is in the table."""
        return to_state in self.allowed(from_state)

    def check(self, key: str, from_state: S | None, to_state: S) -> None:
        """Refuse an illegal move with an error that names the entity and what is allowed.

        Raises:
            IllegalTransitionError: when the move is not in the table.
        """
        if not self.is_legal(from_state, to_state):
            raise IllegalTransitionError(
                self.entity, key, from_state, to_state, self.allowed(from_state)
            )

    def path(self, from_state: S | None, to_state: S) -> tuple[S, ...]:
        """The shortest legal sequence of states that leads from ``from_state`` to ``to_state``.

        Reconciliation uses it when Airflow reports an end state whose intermediate states no
        listener saw (a task the scheduler failed without running, a run that ended before any task
        started). The result excludes ``from_state`` and ends with ``to_state``; it is empty when the
        entity already is in ``to_state``.

        Raises:
            IllegalTransitionError: when ``to_state`` cannot be reached at all.
        """
        if from_state == to_state:
            return ()
        start: S | None = from_state
        queue: deque[tuple[S | None, tuple[S, ...]]] = deque([(start, ())])
        seen: set[S | None] = {start}
        while queue:
            state: S | None
            trail: tuple[S, ...]
            state, trail = queue.popleft()
            for nxt in sorted(self.automatic(state)):
                if nxt in seen:
                    continue
                extended: tuple[S, ...] = (*trail, nxt)  # type: ignore[arg-type]  # mypy loses the constrained TypeVar here
                if nxt == to_state:
                    return extended
                seen.add(nxt)
                queue.append((nxt, extended))
        raise IllegalTransitionError(
            self.entity, "(path)", from_state, to_state, self.automatic(from_state)
        )


def _table(raw: Mapping[S, tuple[S, ...]]) -> dict[S, frozenset[S]]:
    return {source: frozenset(targets) for source, targets in raw.items()}


R = RunState
RUN_MACHINE: StateMachine[RunState] = StateMachine(
    entity="run",
    initial=R.CREATED,
    transitions=_table(
        {
            R.CREATED: (R.VALIDATED, R.REJECTED),
            R.VALIDATED: (R.RUNNING, R.REJECTED),
            R.RUNNING: (R.COMPLETED, R.FAILED, R.WAITING_APPROVAL),
            # FAILED from WAITING_APPROVAL: the run timed out or was failed by hand while a human
            # decision was pending; the request is then moot.
            R.WAITING_APPROVAL: (R.RUNNING, R.REJECTED, R.FAILED),
            R.FAILED: (R.COMPENSATING,),
            R.COMPENSATING: (R.COMPENSATED, R.COMPENSATION_FAILED),
            R.COMPLETED: (),
            R.REJECTED: (),
            R.COMPENSATED: (),
            R.COMPENSATION_FAILED: (),
        }
    ),
    # Deliberate acts only, never taken by reconciliation: `wfe compensate --force` undoing a run
    # that succeeded; a policy gate denying mid-run (RUNNING -> REJECTED); undoing what a rejected
    # run's earlier steps did (REJECTED -> COMPENSATING, by its saga or by hand).
    manual=frozenset(
        {
            (R.COMPLETED, R.COMPENSATING),
            (R.RUNNING, R.REJECTED),
            (R.REJECTED, R.COMPENSATING),
        }
    ),
)

T = StepState
STEP_MACHINE: StateMachine[StepState] = StateMachine(
    entity="step",
    initial=T.PENDING,
    transitions=_table(
        {
            # FAILED straight from PENDING: the scheduler failed the task without it ever running
            # (e.g. its worker vanished while queued, or the run timed out).
            T.PENDING: (T.RUNNING, T.SKIPPED, T.UPSTREAM_FAILED, T.FAILED),
            T.RUNNING: (T.SUCCEEDED, T.FAILED, T.SKIPPED, T.RETRYING),
            T.RETRYING: (T.RUNNING, T.FAILED, T.SKIPPED, T.UPSTREAM_FAILED),
            T.SUCCEEDED: (T.COMPENSATING,),
            T.COMPENSATING: (T.COMPENSATED, T.COMPENSATION_FAILED),
            T.FAILED: (),
            T.SKIPPED: (),
            T.UPSTREAM_FAILED: (),
            T.COMPENSATED: (),
            T.COMPENSATION_FAILED: (),
        }
    ),
)
