"""Whole-workflow checks: each fires on a minimal bad spec, with its path, code and message, and stays
silent on good ones; topological order; properties over random DAG-shaped specs."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_wfe.core.spec.models import WorkflowSpec
from airflow_wfe.core.spec.problems import Problem, Severity
from airflow_wfe.core.spec.validate import topological_order, validate_spec
from airflow_wfe.core.states import RUN_MACHINE, RunState, StateMachine

R = RunState
WARNING = Severity.WARNING


def make(steps: dict[str, dict[str, Any]], **top: Any) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {"name": "wf", "version": "1", "owner": "team", "steps": steps, **top}
    )


def step(*needs: str, **keys: Any) -> dict[str, Any]:
    return {"run": "pkg.mod:fn", "needs": list(needs), **keys}


def of(problems: list[Problem], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]


DIAMOND = {"a": step(), "b": step("a"), "c": step("a"), "d": step("b", "c")}


# --- good specs -------------------------------------------------------------------------------


def test_diamond_is_clean() -> None:
    assert validate_spec(make(DIAMOND)) == []


def test_realistic_good_spec_is_clean() -> None:
    spec = make(
        {
            "build": step(retry={"max_attempts": 3}),
            "list_targets": step(),
            "test": step("build"),
            "stage": step(
                "test",
                "list_targets",
                side_effects=True,
                compensate="pkg.mod:unstage",
                for_each={"from": "list_targets"},
                max_parallel=4,
            ),
            "waves": step("stage", for_each=[1, 2, 3], max_parallel=3),
            # Irreversible, but last: nothing can fail after it succeeded.
            "release": step(
                "waves",
                side_effects=True,
                irreversible=True,
                gate={"approval": True, "timeout": "4h"},
            ),
        }
    )
    assert validate_spec(spec) == []


# --- unknown steps ----------------------------------------------------------------------------


def test_unknown_need_points_at_the_item_and_suggests_the_closest_step() -> None:
    spec = make({"build": step(), "test": step("build"), "deploy": step("build", "tset")})
    assert validate_spec(spec) == [
        Problem(
            "needs unknown step 'tset'",
            path=("steps", "deploy", "needs", 1),
            code="unknown-step",
            suggestion="did you mean 'test'?",
        )
    ]


def test_unknown_need_without_a_close_step_has_no_suggestion() -> None:
    [problem] = validate_spec(make({"build": step("zzzzzz")}))
    assert problem.code == "unknown-step"
    assert problem.suggestion is None


def test_unknown_fan_out_source() -> None:
    spec = make({"build": step(), "ship": step("build", for_each={"from": "buld"})})
    assert validate_spec(spec) == [
        Problem(
            "fans out over the result of unknown step 'buld'",
            path=("steps", "ship", "for_each", "from"),
            code="unknown-step",
            suggestion="did you mean 'build'?",
        )
    ]


# --- cycles -----------------------------------------------------------------------------------


def test_two_step_cycle_is_named_in_order_once() -> None:
    spec = make({"build": step("test"), "test": step("build")})
    assert validate_spec(spec) == [
        Problem("cycle: build → test → build", path=("steps", "build", "needs", 0), code="cycle")
    ]


def test_cycle_starts_at_the_first_declared_step() -> None:
    spec = make({"test": step("build"), "build": step("test")})
    assert [p.message for p in validate_spec(spec)] == ["cycle: test → build → test"]


def test_self_dependency_is_a_cycle() -> None:
    spec = make({"a": step(), "b": step("a", "b")})
    assert validate_spec(spec) == [
        Problem("cycle: b → b", path=("steps", "b", "needs", 1), code="cycle")
    ]


def test_each_distinct_cycle_is_reported_once() -> None:
    # a → b → c → a and a → c → a share the need "a needs c".
    spec = make({"a": step("c"), "b": step("a"), "c": step("b", "a")})
    problems = of(validate_spec(spec), "cycle")
    assert [p.message for p in problems] == ["cycle: a → b → c → a", "cycle: a → c → a"]
    assert {p.path for p in problems} == {("steps", "a", "needs", 0)}


def test_two_separate_cycles() -> None:
    spec = make({"a": step("b"), "b": step("a"), "c": step(), "d": step("e"), "e": step("d")})
    assert [p.message for p in validate_spec(spec)] == [
        "cycle: a → b → a",
        "cycle: d → e → d",
    ]


def test_many_cycles_are_capped() -> None:
    # A complete graph on 7 steps has far more than 20 elementary cycles.
    names = [f"s{i}" for i in range(7)]
    spec = make({n: step(*(m for m in names if m != n)) for n in names})
    cycles = of(validate_spec(spec), "cycle")
    assert len(cycles) == 21
    assert len({p.message for p in cycles}) == 21
    assert cycles[-1].message == "more than 20 cycles; only the first 20 are named"


# --- unreachable ------------------------------------------------------------------------------


def test_steps_after_a_cycle_are_unreachable() -> None:
    spec = make(
        {
            "build": step("test"),
            "test": step("build"),
            "deploy": step("test"),
            "notify": step("deploy"),
            "lint": step(),
        }
    )
    assert of(validate_spec(spec), "unreachable") == [
        Problem(
            "can never start: it needs 'test', which is in a cycle",
            path=("steps", "deploy", "needs", 0),
            code="unreachable",
        ),
        Problem(
            "can never start: it needs 'deploy', which waits on 'test', which is in a cycle",
            path=("steps", "notify", "needs", 0),
            code="unreachable",
        ),
    ]


def test_steps_after_an_unknown_need_are_unreachable() -> None:
    spec = make({"ok": step(), "a": step("ghost"), "b": step("ok", "a")})
    assert validate_spec(spec) == [
        Problem("needs unknown step 'ghost'", path=("steps", "a", "needs", 0), code="unknown-step"),
        Problem(
            "can never start: it needs 'a', which needs unknown step 'ghost'",
            path=("steps", "b", "needs", 1),
            code="unreachable",
        ),
    ]


# --- fan-out source ---------------------------------------------------------------------------


def test_fan_out_source_must_be_upstream() -> None:
    spec = make({"list_items": step(), "process": step(for_each={"from": "list_items"})})
    assert validate_spec(spec) == [
        Problem(
            "fans out over the result of 'list_items', which is not upstream: it must finish "
            "before this step starts",
            path=("steps", "process", "for_each", "from"),
            code="fan-out-source",
            suggestion="add 'list_items' to needs",
        )
    ]


def test_fan_out_source_may_be_a_transitive_upstream() -> None:
    spec = make({"a": step(), "b": step("a"), "c": step("b", for_each={"from": "a"})})
    assert validate_spec(spec) == []


def test_fan_out_over_a_parallel_branch_is_refused() -> None:
    spec = make({"a": step(), "b": step("a"), "c": step("a", for_each={"from": "b"})})
    assert [p.code for p in validate_spec(spec)] == ["fan-out-source"]


def test_fan_out_over_itself() -> None:
    [problem] = validate_spec(make({"a": step(for_each={"from": "a"})}))
    assert problem.code == "fan-out-source"
    assert problem.message == "fans out over its own result, which does not exist yet"


# --- gates and side effects -------------------------------------------------------------------


def test_gate_without_timeout() -> None:
    spec = make({"build": step(), "deploy": step("build", gate={"approval": True})})
    [problem] = validate_spec(spec)
    assert (problem.code, problem.path, problem.severity) == (
        "gate-timeout",
        ("steps", "deploy", "gate"),
        Severity.ERROR,
    )
    assert problem.message == "gate has no timeout: a pending decision would hold the run forever"


def test_gate_with_timeout_is_fine() -> None:
    assert validate_spec(make({"deploy": step(gate={"approval": True, "timeout": "1h"})})) == []


def test_side_effects_need_compensate_or_irreversible() -> None:
    spec = make({"charge": step(side_effects=True)})
    assert validate_spec(spec) == [
        Problem(
            "has side effects but no compensate: a failed run could not undo it",
            path=("steps", "charge", "side_effects"),
            code="side-effects-uncompensated",
            suggestion="add compensate, or set irreversible: true if it cannot be undone",
        )
    ]


@pytest.mark.parametrize(
    "keys", [{"compensate": "pkg.mod:refund"}, {"irreversible": True}], ids=["compensate", "irr"]
)
def test_side_effects_with_an_answer_are_fine(keys: dict[str, Any]) -> None:
    assert validate_spec(make({"charge": step(side_effects=True, **keys)})) == []


# --- failure paths: the run state machine -----------------------------------------------------


def test_the_real_run_machine_lets_every_run_end() -> None:
    assert validate_spec(make(DIAMOND), machine=RUN_MACHINE) == []


def test_machine_where_a_failed_run_cannot_end() -> None:
    machine = StateMachine(
        entity="run",
        initial=R.CREATED,
        transitions={
            R.CREATED: frozenset({R.RUNNING}),
            R.RUNNING: frozenset({R.COMPLETED, R.FAILED}),
            R.FAILED: frozenset({R.COMPENSATING}),
            R.COMPENSATING: frozenset({R.FAILED}),
        },
    )
    assert validate_spec(make(DIAMOND), machine=machine) == [
        Problem(
            "run state FAILED reaches no terminal state (COMPLETED): a failed run can never end",
            code="no-terminal-path",
        ),
        Problem(
            "run state COMPENSATING reaches no terminal state (COMPLETED): a run there never ends",
            code="no-terminal-path",
        ),
    ]


def test_machine_without_a_failed_state() -> None:
    machine = StateMachine(
        entity="run", initial=R.CREATED, transitions={R.CREATED: frozenset({R.COMPLETED})}
    )
    assert [p.message for p in validate_spec(make(DIAMOND), machine=machine)] == [
        "the run state machine has no FAILED state: a failed run has no way to end"
    ]


def test_machine_with_no_terminal_state_at_all() -> None:
    machine = StateMachine(
        entity="run",
        initial=R.CREATED,
        transitions={R.CREATED: frozenset({R.FAILED}), R.FAILED: frozenset({R.CREATED})},
    )
    assert [p.message for p in validate_spec(make(DIAMOND), machine=machine)] == [
        "run state CREATED reaches no terminal state (none): a run there never ends",
        "run state FAILED reaches no terminal state (none): a failed run can never end",
    ]


# --- failure paths: irreversible steps --------------------------------------------------------

IRREVERSIBLE = {"side_effects": True, "irreversible": True}


def _irreversible_message(names: str, verb: str = "is") -> str:
    return (
        f"if this step fails after {names} succeeded, the run cannot be fully compensated and "
        f"ends COMPENSATION_FAILED ({names} {verb} irreversible)"
    )


def test_irreversible_step_on_a_parallel_branch() -> None:
    spec = make({"a": step(), "b": step("a", **IRREVERSIBLE), "c": step("a"), "d": step("b", "c")})
    assert validate_spec(spec) == [
        Problem(
            _irreversible_message("'b'"),
            path=("steps", "c"),
            severity=WARNING,
            code="irreversible-on-failure-path",
            suggestion="make 'b' need this step so it runs only after this succeeds",
        ),
        Problem(
            _irreversible_message("'b'"),
            path=("steps", "d"),
            severity=WARNING,
            code="irreversible-on-failure-path",
        ),
    ]


def test_failure_after_an_irreversible_ancestor() -> None:
    spec = make({"publish": step(**IRREVERSIBLE), "verify": step("publish")})
    [problem] = validate_spec(spec)
    assert (problem.code, problem.path, problem.severity) == (
        "irreversible-on-failure-path",
        ("steps", "verify"),
        WARNING,
    )
    assert "'publish'" in problem.message
    assert "COMPENSATION_FAILED" in problem.message


def test_irreversible_step_downstream_of_the_failure_is_safe() -> None:
    # If "verify" fails, "publish" never runs: nothing irreversible has happened.
    spec = make({"verify": step(), "publish": step("verify", **IRREVERSIBLE)})
    assert validate_spec(spec) == []


def test_several_irreversible_steps_are_named_together() -> None:
    spec = make({"x": step(**IRREVERSIBLE), "y": step("x", **IRREVERSIBLE), "z": step("y")})
    assert [(p.path, p.message) for p in validate_spec(spec)] == [
        (("steps", "y"), _irreversible_message("'x'")),
        (("steps", "z"), _irreversible_message("'x' and 'y'", "are")),
    ]


def test_parallel_irreversible_steps_warn_about_each_other() -> None:
    spec = make({"x": step(**IRREVERSIBLE), "y": step(**IRREVERSIBLE)})
    problems = validate_spec(spec)
    assert [(p.path, p.message) for p in problems] == [
        (("steps", "x"), _irreversible_message("'y'")),
        (("steps", "y"), _irreversible_message("'x'")),
    ]


def test_steps_that_never_start_do_not_warn_about_irreversible_ones() -> None:
    spec = make({"x": step(**IRREVERSIBLE), "a": step("b"), "b": step("a")})
    assert [p.code for p in validate_spec(spec)] == ["cycle"]


# --- warnings: retries and fan-out ------------------------------------------------------------


def test_retried_side_effect_warns() -> None:
    spec = make(
        {"pay": step(side_effects=True, compensate="pkg.mod:refund", retry={"max_attempts": 3})}
    )
    assert validate_spec(spec) == [
        Problem(
            "step 'pay' has side effects and is tried up to 3 times: every try must be "
            "idempotent, or a retry repeats the effect",
            path=("steps", "pay", "retry"),
            severity=WARNING,
            code="non-idempotent-retry",
            suggestion="make the effect idempotent (e.g. an idempotency key) or set max_attempts: 1",
        )
    ]


def test_retry_inherited_from_defaults_points_at_the_defaults() -> None:
    spec = make(
        {"pay": step(side_effects=True, compensate="pkg.mod:refund"), "log": step()},
        defaults={"retry": {"max_attempts": 2}},
    )
    [problem] = validate_spec(spec)
    assert (problem.code, problem.path) == ("non-idempotent-retry", ("defaults", "retry"))


@pytest.mark.parametrize(
    "keys",
    [
        {"side_effects": True, "compensate": "pkg.mod:refund", "retry": {"max_attempts": 1}},
        {"retry": {"max_attempts": 5}},
    ],
    ids=["no-retry", "no-side-effects"],
)
def test_retry_without_repeated_effects_is_fine(keys: dict[str, Any]) -> None:
    assert validate_spec(make({"pay": step(**keys)})) == []


def test_max_parallel_above_the_literal_list() -> None:
    spec = make({"fan": step(for_each=["eu", "us"], max_parallel=5)})
    assert validate_spec(spec) == [
        Problem(
            "max_parallel is 5 but for_each lists only 2 items: it never limits anything",
            path=("steps", "fan", "max_parallel"),
            severity=WARNING,
            code="max-parallel-too-large",
            suggestion="lower it to 2 or less",
        )
    ]


@pytest.mark.parametrize(
    "keys",
    [
        {"for_each": ["eu", "us"], "max_parallel": 2},
        {"for_each": ["eu", "us", "ap"], "max_parallel": 2},
        {"for_each": {"from": "src"}, "max_parallel": 50},
    ],
)
def test_max_parallel_that_limits_or_cannot_be_judged_is_fine(keys: dict[str, Any]) -> None:
    assert validate_spec(make({"src": step(), "fan": step("src", **keys)})) == []


# --- ordering of the report -------------------------------------------------------------------


def test_errors_come_before_warnings_and_the_report_is_stable() -> None:
    spec = make(
        {
            "fan": step(for_each=[1], max_parallel=3),  # warning
            "pay": step(side_effects=True, retry={"max_attempts": 2}),  # error + warning
            "gate": step(gate={}),  # error
            "loop": step("loop"),  # error
        }
    )
    problems = validate_spec(spec)
    assert [(p.severity, p.code) for p in problems] == [
        (Severity.ERROR, "cycle"),
        (Severity.ERROR, "gate-timeout"),
        (Severity.ERROR, "side-effects-uncompensated"),
        (WARNING, "non-idempotent-retry"),
        (WARNING, "max-parallel-too-large"),
    ]
    assert validate_spec(spec) == problems


# --- topological order ------------------------------------------------------------------------


def test_topological_order_of_the_diamond() -> None:
    assert topological_order(make(DIAMOND)) == ["a", "b", "c", "d"]


def test_topological_order_breaks_ties_by_declaration_order() -> None:
    spec = make({"d": step("b", "c"), "c": step("a"), "z": step(), "b": step("a"), "a": step()})
    assert topological_order(spec) == ["z", "a", "c", "b", "d"]


def test_topological_order_names_the_cycle() -> None:
    spec = make({"lint": step(), "build": step("test"), "test": step("build")})
    with pytest.raises(ValueError, match=re.escape("cycle: build → test → build")):
        topological_order(spec)


def test_topological_order_refuses_unknown_needs() -> None:
    with pytest.raises(ValueError, match="needs unknown step 'ghost'"):
        topological_order(make({"a": step("ghost")}))


# --- properties over random DAG-shaped specs --------------------------------------------------

_IDS = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Steps in declaration order, each needing only earlier steps: acyclic by construction."""
    ids = draw(st.lists(_IDS, min_size=1, max_size=12, unique=True))
    return {
        step_id: draw(st.lists(st.sampled_from(ids[:i]), unique=True)) if i else []
        for i, step_id in enumerate(ids)
    }


def _spec(graph: dict[str, list[str]]) -> WorkflowSpec:
    return make({step_id: step(*needs) for step_id, needs in graph.items()})


def _descendants(graph: dict[str, list[str]], root: str) -> set[str]:
    found: set[str] = set()
    frontier = {root}
    while frontier:
        frontier = {s for s, needs in graph.items() if frontier & set(needs)} - found
        found |= frontier
    return found


@settings(max_examples=200, deadline=None)
@given(dags())
def test_dags_have_no_graph_problems_and_a_consistent_order(graph: dict[str, list[str]]) -> None:
    spec = _spec(graph)
    assert validate_spec(spec) == []
    order = topological_order(spec)
    assert sorted(order) == sorted(graph)
    position = {s: i for i, s in enumerate(order)}
    for step_id, needs in graph.items():
        assert all(position[n] < position[step_id] for n in needs)
    # Stable: each pick is the earliest-declared step whose needs are all done.
    declared = list(graph)
    done: set[str] = set()
    for step_id in order:
        ready = [s for s in declared if s not in done and set(graph[s]) <= done]
        assert step_id == ready[0]
        done.add(step_id)


@settings(max_examples=200, deadline=None)
@given(dags(), st.data())
def test_one_back_edge_always_makes_a_cycle(
    graph: dict[str, list[str]], data: st.DataObject
) -> None:
    ids = list(graph)
    source = data.draw(st.sampled_from(ids))
    # ``source`` needs one of its descendants (or itself): that closes a loop through source.
    target = data.draw(st.sampled_from(sorted(_descendants(graph, source) | {source})))
    graph[source] = [*graph[source], target]
    spec = _spec(graph)
    cycles = of(validate_spec(spec), "cycle")
    assert cycles
    assert len({p.message for p in cycles}) == len(cycles)
    closing = []
    for problem in cycles:
        names = problem.message.removeprefix("cycle: ").split(" → ")
        assert names[0] == names[-1]
        closing += list(itertools.pairwise(names))
    assert (target, source) in closing
    with pytest.raises(ValueError, match=r"^cycle: "):
        topological_order(spec)


def _brute_force_cycles(graph: dict[str, list[str]]) -> set[str]:
    """Every elementary cycle, by walking every simple path: slow, obviously right."""
    order = list(graph)
    downstream = {s: [d for d in order if s in graph[d]] for s in order}
    found: set[str] = set()

    def walk(path: list[str]) -> None:
        for nxt in downstream[path[-1]]:
            if nxt == path[0]:
                found.add("cycle: " + " → ".join([*path, nxt]))
            elif nxt not in path and order.index(nxt) > order.index(path[0]):
                walk([*path, nxt])

    for start in order:
        walk([start])
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_IDS, min_size=1, max_size=6, unique=True).flatmap(
        lambda ids: st.fixed_dictionaries(
            {i: st.lists(st.sampled_from(ids), unique=True, max_size=3) for i in ids}
        )
    )
)
def test_every_cycle_is_named_exactly_once(graph: dict[str, list[str]]) -> None:
    expected = _brute_force_cycles(graph)
    messages = [p.message for p in of(validate_spec(_spec(graph)), "cycle")]
    if len(expected) <= 20:
        assert sorted(messages) == sorted(expected)
    else:
        assert set(messages[:20]) <= expected
