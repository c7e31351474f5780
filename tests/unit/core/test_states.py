"""The run and step state machines: states, legal moves, terminal states, errors and paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE, RunState, StateMachine, StepState
from airflow_wfe.exceptions import IllegalTransitionError, StateError, WfeError

R = RunState
T = StepState

MACHINES: tuple[StateMachine[Any], ...] = (RUN_MACHINE, STEP_MACHINE)

SEED_RUN_STATES = {
    "CREATED",
    "VALIDATED",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "COMPENSATING",
    "COMPENSATED",
    "COMPENSATION_FAILED",
    "REJECTED",
    "WAITING_APPROVAL",
}
SEED_STEP_STATES = {
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "SKIPPED",
    "RETRYING",
    "COMPENSATING",
    "COMPENSATED",
    "COMPENSATION_FAILED",
}

#: The transitions the design documents; each must be legal (the table may allow more).
DOCUMENTED_RUN_MOVES: list[tuple[RunState, RunState]] = [
    (R.CREATED, R.VALIDATED),
    (R.VALIDATED, R.RUNNING),
    (R.RUNNING, R.COMPLETED),
    (R.RUNNING, R.FAILED),
    (R.FAILED, R.COMPENSATING),
    (R.COMPENSATING, R.COMPENSATED),
    (R.COMPENSATING, R.COMPENSATION_FAILED),
    (R.CREATED, R.REJECTED),
    (R.VALIDATED, R.REJECTED),
    (R.RUNNING, R.WAITING_APPROVAL),
    (R.WAITING_APPROVAL, R.RUNNING),
    (R.WAITING_APPROVAL, R.REJECTED),
]
DOCUMENTED_STEP_MOVES: list[tuple[StepState, StepState]] = [
    (T.PENDING, T.RUNNING),
    (T.RUNNING, T.SUCCEEDED),
    (T.RUNNING, T.FAILED),
    (T.RUNNING, T.SKIPPED),
    (T.RUNNING, T.RETRYING),
    (T.RETRYING, T.RUNNING),
    (T.SUCCEEDED, T.COMPENSATING),
    (T.COMPENSATING, T.COMPENSATED),
    (T.COMPENSATING, T.COMPENSATION_FAILED),
]

#: Moves the design rules out: skipping pre-flight, going backwards, leaving an end state.
FORBIDDEN_RUN_MOVES: list[tuple[RunState, RunState]] = [
    (R.CREATED, R.RUNNING),
    (R.CREATED, R.COMPLETED),
    (R.VALIDATED, R.COMPLETED),
    (R.RUNNING, R.CREATED),
    (R.RUNNING, R.VALIDATED),
    (R.RUNNING, R.COMPENSATED),
    (R.RUNNING, R.COMPENSATING),
    (R.COMPLETED, R.FAILED),
    (R.FAILED, R.RUNNING),
    (R.FAILED, R.COMPLETED),
    (R.REJECTED, R.RUNNING),
    (R.COMPENSATED, R.COMPENSATING),
    (R.COMPENSATION_FAILED, R.COMPENSATING),
    (R.WAITING_APPROVAL, R.COMPLETED),
]
FORBIDDEN_STEP_MOVES: list[tuple[StepState, StepState]] = [
    (T.PENDING, T.SUCCEEDED),
    (T.PENDING, T.RETRYING),
    (T.PENDING, T.COMPENSATING),
    (T.SUCCEEDED, T.RUNNING),
    (T.SUCCEEDED, T.FAILED),
    (T.FAILED, T.RUNNING),
    (T.FAILED, T.COMPENSATING),
    (T.SKIPPED, T.RUNNING),
    (T.RETRYING, T.SUCCEEDED),
    (T.COMPENSATED, T.COMPENSATING),
    (T.COMPENSATION_FAILED, T.COMPENSATING),
]


# -- helpers -----------------------------------------------------------------------------------


def assert_walk(machine: StateMachine[Any], start: Any, states: Sequence[Any]) -> None:
    """Every consecutive pair of ``start, *states`` must be one move of the machine's table."""
    previous = start
    for state in states:
        if previous is None:
            assert state == machine.initial, f"{machine.entity}: first state {state} not initial"
        else:
            assert state in machine.allowed(previous), (
                f"{machine.entity}: {previous} → {state} is not in the table"
            )
        previous = state


def distance(machine: StateMachine[Any], start: Any, target: Any) -> int | None:
    """Fewest moves from ``start`` to ``target``, by expanding the frontier one move at a time."""
    if start == target:
        return 0
    frontier: set[Any] = {start}
    visited: set[Any] = {start}
    for moves in range(1, len(machine.states) + 2):
        frontier = {nxt for state in frontier for nxt in machine.automatic(state)} - visited
        if target in frontier:
            return moves
        if not frontier:
            return None
        visited |= frontier
    return None


# -- states ------------------------------------------------------------------------------------


def test_seed_run_states_exist() -> None:
    assert {s.value for s in RunState} >= SEED_RUN_STATES
    assert {s.value for s in RUN_MACHINE.states} >= SEED_RUN_STATES


def test_seed_step_states_exist() -> None:
    assert {s.value for s in StepState} >= SEED_STEP_STATES
    assert {s.value for s in STEP_MACHINE.states} >= SEED_STEP_STATES


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_every_enum_member_is_in_the_table(machine: StateMachine[Any]) -> None:
    enum = type(machine.initial)
    # No state of the enum is forgotten by the table, and the table uses no other states.
    assert machine.states == frozenset(enum)


def test_initial_states() -> None:
    assert RUN_MACHINE.initial is R.CREATED
    assert STEP_MACHINE.initial is T.PENDING
    assert RUN_MACHINE.allowed(None) == {R.CREATED}
    assert STEP_MACHINE.allowed(None) == {T.PENDING}
    assert RUN_MACHINE.is_legal(None, R.CREATED)
    assert not RUN_MACHINE.is_legal(None, R.RUNNING)
    assert not STEP_MACHINE.is_legal(None, T.RUNNING)


# -- legal and illegal moves ---------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), DOCUMENTED_RUN_MOVES)
def test_documented_run_moves_are_legal(source: RunState, target: RunState) -> None:
    assert RUN_MACHINE.is_legal(source, target)
    assert target in RUN_MACHINE.allowed(source)
    RUN_MACHINE.check("dag/run", source, target)


@pytest.mark.parametrize(("source", "target"), DOCUMENTED_STEP_MOVES)
def test_documented_step_moves_are_legal(source: StepState, target: StepState) -> None:
    assert STEP_MACHINE.is_legal(source, target)
    assert target in STEP_MACHINE.allowed(source)
    STEP_MACHINE.check("dag/run/task", source, target)


def test_documented_happy_run_path_is_a_walk() -> None:
    assert_walk(RUN_MACHINE, None, [R.CREATED, R.VALIDATED, R.RUNNING, R.COMPLETED])
    assert_walk(RUN_MACHINE, R.RUNNING, [R.FAILED, R.COMPENSATING, R.COMPENSATION_FAILED])
    assert_walk(RUN_MACHINE, R.RUNNING, [R.WAITING_APPROVAL, R.RUNNING, R.COMPLETED])


@pytest.mark.parametrize(("source", "target"), FORBIDDEN_RUN_MOVES)
def test_forbidden_run_moves_are_refused(source: RunState, target: RunState) -> None:
    assert not RUN_MACHINE.is_legal(source, target)
    with pytest.raises(IllegalTransitionError):
        RUN_MACHINE.check("dag/run", source, target)


@pytest.mark.parametrize(("source", "target"), FORBIDDEN_STEP_MOVES)
def test_forbidden_step_moves_are_refused(source: StepState, target: StepState) -> None:
    assert not STEP_MACHINE.is_legal(source, target)
    with pytest.raises(IllegalTransitionError):
        STEP_MACHINE.check("dag/run/task", source, target)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_staying_in_place_is_not_a_move(machine: StateMachine[Any]) -> None:
    # A self-loop would let a repeated report write a second transition.
    for state in machine.states:
        assert not machine.is_legal(state, state), state


# -- terminal states ---------------------------------------------------------------------------


def test_run_terminal_states() -> None:
    assert RUN_MACHINE.terminal == {R.COMPLETED, R.REJECTED, R.COMPENSATED, R.COMPENSATION_FAILED}


def test_step_terminal_states() -> None:
    assert STEP_MACHINE.terminal == {
        T.FAILED,
        T.SKIPPED,
        T.UPSTREAM_FAILED,
        T.COMPENSATED,
        T.COMPENSATION_FAILED,
    }


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_nothing_leaves_a_terminal_state(machine: StateMachine[Any]) -> None:
    assert machine.terminal, "a machine without end states"
    for state in machine.terminal:
        assert machine.automatic(state) == frozenset()
        manual = {target for source, target in machine.manual if source == state}
        assert machine.allowed(state) == manual
        for target in machine.states - manual:
            with pytest.raises(IllegalTransitionError) as info:
                machine.check("k", state, target)
            assert info.value.allowed == tuple(sorted(manual))
    # Non-terminal states all have somewhere to go on their own.
    for state in machine.states - machine.terminal:
        assert machine.automatic(state)


def test_a_completed_run_is_compensated_only_by_a_deliberate_manual_move() -> None:
    assert RUN_MACHINE.manual == {
        (R.COMPLETED, R.COMPENSATING),
        # a gate denying mid-run, and the saga of a rejected run: deliberate, never reconciled
        (R.RUNNING, R.REJECTED),
        (R.REJECTED, R.COMPENSATING),
    }
    assert R.REJECTED in RUN_MACHINE.terminal
    assert R.REJECTED not in RUN_MACHINE.path(None, R.COMPENSATED)
    assert R.COMPLETED in RUN_MACHINE.terminal
    RUN_MACHINE.check("deploy/r1", R.COMPLETED, R.COMPENSATING)  # legal when asked for
    assert R.COMPENSATING not in RUN_MACHINE.path(None, R.COMPLETED)
    with pytest.raises(IllegalTransitionError):
        RUN_MACHINE.path(R.COMPLETED, R.COMPENSATED)  # never taken by reconciliation


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_every_state_is_reachable_and_can_end(machine: StateMachine[Any]) -> None:
    for state in machine.states:
        assert distance(machine, None, state) is not None, f"{state} unreachable"
        assert any(distance(machine, state, end) is not None for end in machine.terminal), (
            f"{state} can never end"
        )


# -- errors ------------------------------------------------------------------------------------


def test_illegal_run_move_message_names_key_states_and_allowed() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        RUN_MACHINE.check("deploy/r1", R.RUNNING, R.COMPENSATED)
    error = info.value
    assert str(error) == (
        "run 'deploy/r1' cannot go RUNNING → COMPENSATED; allowed: COMPLETED, FAILED, "
        "REJECTED, WAITING_APPROVAL"
    )
    assert error.entity == "run"
    assert error.key == "deploy/r1"
    assert error.from_state == "RUNNING"
    assert error.to_state == "COMPENSATED"
    assert error.allowed == ("COMPLETED", "FAILED", "REJECTED", "WAITING_APPROVAL")
    assert isinstance(error, StateError)
    assert isinstance(error, WfeError)


def test_illegal_step_move_message() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        STEP_MACHINE.check("deploy/r1/canary[3]", T.SUCCEEDED, T.RUNNING)
    assert str(info.value) == (
        "step 'deploy/r1/canary[3]' cannot go SUCCEEDED → RUNNING; allowed: COMPENSATING"
    )


def test_illegal_move_from_terminal_state_message() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        RUN_MACHINE.check("deploy/r1", R.COMPENSATED, R.RUNNING)
    assert str(info.value) == (
        "run 'deploy/r1' cannot go COMPENSATED → RUNNING; allowed: none (terminal state)"
    )


def test_illegal_first_move_message() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        RUN_MACHINE.check("deploy/r1", None, R.RUNNING)
    assert str(info.value) == "run 'deploy/r1' cannot go (new) → RUNNING; allowed: CREATED"
    assert info.value.from_state is None


# -- path() ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "start", "target", "expected"),
    [
        (RUN_MACHINE, None, R.RUNNING, (R.CREATED, R.VALIDATED, R.RUNNING)),
        (RUN_MACHINE, None, R.CREATED, (R.CREATED,)),
        (RUN_MACHINE, R.CREATED, R.FAILED, (R.VALIDATED, R.RUNNING, R.FAILED)),
        (RUN_MACHINE, R.VALIDATED, R.COMPLETED, (R.RUNNING, R.COMPLETED)),
        (RUN_MACHINE, R.CREATED, R.REJECTED, (R.REJECTED,)),
        (
            RUN_MACHINE,
            None,
            R.COMPENSATED,
            (R.CREATED, R.VALIDATED, R.RUNNING, R.FAILED, R.COMPENSATING, R.COMPENSATED),
        ),
        (RUN_MACHINE, R.WAITING_APPROVAL, R.COMPLETED, (R.RUNNING, R.COMPLETED)),
        (STEP_MACHINE, None, T.UPSTREAM_FAILED, (T.PENDING, T.UPSTREAM_FAILED)),
        (STEP_MACHINE, None, T.SUCCEEDED, (T.PENDING, T.RUNNING, T.SUCCEEDED)),
        (STEP_MACHINE, T.PENDING, T.FAILED, (T.FAILED,)),
        (STEP_MACHINE, T.RETRYING, T.SUCCEEDED, (T.RUNNING, T.SUCCEEDED)),
        (STEP_MACHINE, T.RUNNING, T.UPSTREAM_FAILED, (T.RETRYING, T.UPSTREAM_FAILED)),
        (STEP_MACHINE, T.SUCCEEDED, T.COMPENSATED, (T.COMPENSATING, T.COMPENSATED)),
    ],
)
def test_path_examples(
    machine: StateMachine[Any], start: Any, target: Any, expected: tuple[Any, ...]
) -> None:
    assert machine.path(start, target) == expected


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_path_to_current_state_is_empty(machine: StateMachine[Any]) -> None:
    for state in machine.states:
        assert machine.path(state, state) == ()


@pytest.mark.parametrize(
    ("machine", "start", "target"),
    [
        (RUN_MACHINE, R.COMPLETED, R.RUNNING),
        (RUN_MACHINE, R.RUNNING, R.CREATED),
        (RUN_MACHINE, R.FAILED, R.COMPLETED),
        (RUN_MACHINE, R.RUNNING, R.VALIDATED),
        (STEP_MACHINE, T.SUCCEEDED, T.FAILED),
        (STEP_MACHINE, T.FAILED, T.COMPENSATING),
        (STEP_MACHINE, T.RUNNING, T.PENDING),
    ],
)
def test_path_to_unreachable_state_raises(
    machine: StateMachine[Any], start: Any, target: Any
) -> None:
    with pytest.raises(IllegalTransitionError) as info:
        machine.path(start, target)
    assert info.value.from_state == start
    assert info.value.to_state == target
    assert info.value.allowed == tuple(sorted(machine.automatic(start)))


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_path_is_shortest_for_every_pair(machine: StateMachine[Any]) -> None:
    for start in [None, *sorted(machine.states)]:
        for target in sorted(machine.states):
            fewest = distance(machine, start, target)
            if fewest is None:
                with pytest.raises(IllegalTransitionError):
                    machine.path(start, target)
                continue
            path = machine.path(start, target)
            assert len(path) == fewest, (start, target, path)
            assert_walk(machine, start, path)
            if path:
                assert path[-1] == target
                assert start not in path


# -- properties ----------------------------------------------------------------------------------


def apply(
    machine: StateMachine[Any], state: Any, target: Any
) -> tuple[Any, IllegalTransitionError | None]:
    """Request ``target``: the new state, or the unchanged state and the refusal."""
    try:
        machine.check("dag/run", state, target)
    except IllegalTransitionError as error:
        return state, error
    return target, None


@st.composite
def machine_and_start(draw: st.DrawFn) -> tuple[StateMachine[Any], Any]:
    machine = draw(st.sampled_from(MACHINES))
    start = draw(st.one_of(st.none(), st.sampled_from(sorted(machine.states))))
    return machine, start


@settings(max_examples=400, deadline=None)
@given(setup=machine_and_start(), data=st.data())
def test_random_requests_only_ever_walk_the_table(
    setup: tuple[StateMachine[Any], Any], data: st.DataObject
) -> None:
    machine, start = setup
    state = start
    accepted: list[Any] = []
    requests = data.draw(st.integers(min_value=0, max_value=25), label="requests")
    for _ in range(requests):
        # Half the time ask for a legal move (so walks get deep), otherwise for anything at all.
        legal = sorted(machine.allowed(state))
        if legal and data.draw(st.booleans(), label="prefer legal"):
            target = data.draw(st.sampled_from(legal), label="target")
        else:
            target = data.draw(st.sampled_from(sorted(machine.states)), label="target")
        before = state
        state, error = apply(machine, state, target)
        table_allows = machine.allowed(before)
        if error is not None:
            assert target not in table_allows, f"{before} → {target} refused but in the table"
            assert (error.from_state, error.to_state) == (before, target)
            assert error.allowed == tuple(sorted(table_allows))
            assert state == before, "a refused request changed the state"
            continue
        assert target in table_allows, f"{before} → {target} accepted but not in the table"
        assert (
            before is None or before not in machine.terminal or (before, target) in machine.manual
        ), f"left terminal state {before}"
        assert state == target
        accepted.append(target)
    assert_walk(machine, start, accepted)
    if state is not None and state in machine.terminal:
        for target in machine.states:
            assert not machine.is_legal(state, target) or (state, target) in machine.manual


@settings(max_examples=300, deadline=None)
@given(setup=machine_and_start(), data=st.data())
def test_every_path_is_a_legal_walk(
    setup: tuple[StateMachine[Any], Any], data: st.DataObject
) -> None:
    machine, start = setup
    target = data.draw(st.sampled_from(sorted(machine.states)), label="target")
    try:
        path = machine.path(start, target)
    except IllegalTransitionError:
        assert distance(machine, start, target) is None
        return
    assert_walk(machine, start, path)
    assert path == () or path[-1] == target
    state = start
    for step in path:
        machine.check("dag/run", state, step)
        state = step
    assert state == target
