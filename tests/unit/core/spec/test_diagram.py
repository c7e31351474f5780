"""Mermaid and DOT diagrams of step graphs and state machines: exactly the expected nodes and edges,
safe ids, structurally valid DOT, deterministic text."""

from __future__ import annotations

import re
from typing import Any

import pytest

from airflow_wfe.core.spec.diagram import machine_dot, machine_mermaid, steps_dot, steps_mermaid
from airflow_wfe.core.spec.models import WorkflowSpec
from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE, StateMachine

MACHINES: list[StateMachine[Any]] = [RUN_MACHINE, STEP_MACHINE]


def make(steps: dict[str, dict[str, Any]]) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {"name": "deploy-app.v2", "version": "1", "owner": "team", "steps": steps}
    )


def step(*needs: str, **keys: Any) -> dict[str, Any]:
    return {"run": "pkg.mod:fn", "needs": list(needs), **keys}


#: A diamond with one of everything a diagram marks.
SPEC = make(
    {
        "a": step(for_each=["x", "y", "z"]),
        "b": step("a", side_effects=True, compensate="pkg.mod:undo_b"),
        "c": step("a", for_each={"from": "a"}),
        "d": step(
            "b",
            "c",
            side_effects=True,
            irreversible=True,
            gate={"approval": True, "timeout": "1h"},
        ),
    }
)
NEEDS = {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}

_MERMAID_EDGE = re.compile(r"^\s+(\S+) (-->|-\.->) (\S+)$")
_MERMAID_NODE = re.compile(r'^\s+(\w+)(\[|\{\{|\(\[)"([^"]*)"(\]|\}\}|\]\))$')
_DOT_EDGE = re.compile(r'^\s+"([^"]*)" -> "([^"]*)"(?: \[(.*)\])?;$')
_DOT_NODE = re.compile(r'^\s+"([^"]*)" \[(.*)\];$')


def mermaid_edges(text: str) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3]) for line in text.splitlines() if (m := _MERMAID_EDGE.match(line))]


def mermaid_nodes(text: str) -> dict[str, str]:
    return {m[1]: m[3] for line in text.splitlines() if (m := _MERMAID_NODE.match(line))}


def dot_edges(text: str) -> list[tuple[str, str, str | None]]:
    return [(m[1], m[2], m[3]) for line in text.splitlines() if (m := _DOT_EDGE.match(line))]


def dot_nodes(text: str) -> dict[str, str]:
    return {m[1]: m[2] for line in text.splitlines() if (m := _DOT_NODE.match(line))}


def assert_dot_structure(text: str) -> None:
    """Balanced braces outside strings, one statement per line, each line understood."""
    lines = text.splitlines()
    assert re.fullmatch(r'digraph "[^"]*" \{', lines[0])
    assert lines[-1] == "}"
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    assert outside_strings.count("{") == outside_strings.count("}") == 1
    for line in lines[1:-1]:
        assert line.endswith(";"), line
        assert (
            _DOT_EDGE.match(line)
            or _DOT_NODE.match(line)
            or re.fullmatch(r"\s+\w+=\w+;|\s+node \[\w+=\w+\];", line)
        ), line


# --- step graph, Mermaid ----------------------------------------------------------------------


def test_steps_mermaid_has_exactly_the_needs_and_compensation_edges() -> None:
    text = steps_mermaid(SPEC)
    assert text.splitlines()[0] == "flowchart TD"
    edges = mermaid_edges(text)
    assert sorted((a, b) for a, arrow, b in edges if arrow == "-->") == sorted(NEEDS)
    assert [(a, b) for a, arrow, b in edges if arrow == "-.->"] == [("b", "undo_b")]


def test_steps_mermaid_labels_carry_the_markers() -> None:
    nodes = mermaid_nodes(steps_mermaid(SPEC))
    assert nodes == {
        "a": "a (fan-out ×3)",
        "b": "b (compensate)",
        "c": "c (fan-out over a)",
        "d": "d (gate, irreversible)",
        "undo_b": "undo b: pkg.mod:undo_b",
    }
    assert 'd{{"d (gate, irreversible)"}}' in steps_mermaid(SPEC)


def test_steps_mermaid_leaves_out_unknown_needs() -> None:
    spec = make({"a": step(), "b": step("a", "ghost")})
    assert mermaid_edges(steps_mermaid(spec)) == [("a", "-->", "b")]


def test_mermaid_keywords_get_a_prefix_that_cannot_collide() -> None:
    spec = make(
        {
            "start": step(),
            "end": step("start"),
            "step_end": step("end"),
            "style": step("step_end", side_effects=True, compensate="pkg.mod:undo"),
        }
    )
    text = steps_mermaid(spec)
    assert set(mermaid_nodes(text)) == {
        "start",
        "step_end_",
        "step_end",
        "step_style",
        "undo_style",
    }
    assert mermaid_edges(text) == [
        ("start", "-->", "step_end_"),
        ("step_end_", "-->", "step_end"),
        ("step_end", "-->", "step_style"),
        ("step_style", "-.->", "undo_style"),
    ]


def test_undo_node_does_not_collide_with_a_step() -> None:
    spec = make(
        {
            "deploy": step(side_effects=True, compensate="pkg.mod:rollback"),
            "undo_deploy": step("deploy"),
        }
    )
    assert mermaid_edges(steps_mermaid(spec)) == [
        ("deploy", "-->", "undo_deploy"),
        ("deploy", "-.->", "undo_deploy_"),
    ]
    assert ("deploy", "undo_deploy_", "style=dashed") in dot_edges(steps_dot(spec))


def test_compensation_operator_is_named_by_its_class() -> None:
    spec = make(
        {
            "deploy": step(
                side_effects=True,
                compensate={"operator": "pkg.ops.Rollback", "args": {"to": "previous"}},
            )
        }
    )
    assert mermaid_nodes(steps_mermaid(spec))["undo_deploy"] == "undo deploy: pkg.ops.Rollback"


# --- step graph, DOT --------------------------------------------------------------------------


def test_steps_dot_is_well_formed_with_exactly_the_expected_edges() -> None:
    text = steps_dot(SPEC)
    assert_dot_structure(text)
    assert text.splitlines()[0] == 'digraph "deploy-app.v2" {'
    edges = dot_edges(text)
    assert sorted((a, b) for a, b, attrs in edges if attrs is None) == sorted(NEEDS)
    assert [(a, b, attrs) for a, b, attrs in edges if attrs] == [("b", "undo_b", "style=dashed")]


def test_steps_dot_nodes_and_markers() -> None:
    nodes = dot_nodes(steps_dot(SPEC))
    assert set(nodes) == {"a", "b", "c", "d", "undo_b"}
    assert nodes["d"] == 'label="d\\ngate, irreversible", shape="hexagon", penwidth="2"'
    assert nodes["a"] == 'label="a\\nfan-out ×3"'
    assert nodes["undo_b"] == 'label="undo b\\npkg.mod:undo_b", style="rounded,dashed"'


def test_dot_quotes_keywords_as_plain_ids() -> None:
    spec = make({"node": step(), "edge": step("node"), "digraph": step("edge")})
    text = steps_dot(spec)
    assert_dot_structure(text)
    assert dot_edges(text) == [("node", "edge", None), ("edge", "digraph", None)]


# --- state machines ---------------------------------------------------------------------------


def _transitions(machine: StateMachine[Any]) -> set[tuple[str, str]]:
    return {(str(a), str(b)) for a, targets in machine.transitions.items() for b in targets}


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_machine_mermaid_has_every_transition_start_and_end(machine: StateMachine[Any]) -> None:
    text = machine_mermaid(machine)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert lines[1] == f"    [*] --> {machine.initial}"
    edges = [m.groups() for line in lines[1:] if (m := _MERMAID_EDGE.match(line))]
    assert len(edges) == len(lines) - 1
    moves = {(a, b) for a, _, b in edges if "[*]" not in (a, b)}
    assert moves == _transitions(machine)
    assert len(moves) == len([e for e in edges if "[*]" not in (e[0], e[2])])
    ends = {a for a, _, b in edges if b == "[*]"}
    assert ends == {str(s) for s in machine.terminal}


def test_run_machine_mermaid_reads_in_life_order() -> None:
    lines = machine_mermaid(RUN_MACHINE).splitlines()
    assert lines[:5] == [
        "stateDiagram-v2",
        "    [*] --> CREATED",
        "    CREATED --> VALIDATED",
        "    CREATED --> REJECTED",
        "    VALIDATED --> RUNNING",
    ]
    assert lines[-1] == "    REJECTED --> [*]"


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.entity)
def test_machine_dot_is_well_formed(machine: StateMachine[Any]) -> None:
    text = machine_dot(machine)
    assert_dot_structure(text)
    assert text.splitlines()[0] == f'digraph "{machine.entity}" {{'
    edges = {(a, b) for a, b, _ in dot_edges(text)}
    assert edges == _transitions(machine) | {("__start__", str(machine.initial))}
    nodes = dot_nodes(text)
    assert {s for s, attrs in nodes.items() if attrs == "shape=doublecircle"} == {
        str(s) for s in machine.terminal
    }
    assert set(nodes) == {str(s) for s in machine.states} | {"__start__"}


# --- determinism and escaping -----------------------------------------------------------------


@pytest.mark.parametrize(
    "render",
    [
        lambda: steps_mermaid(SPEC),
        lambda: steps_dot(SPEC),
        lambda: machine_mermaid(RUN_MACHINE),
        lambda: machine_dot(STEP_MACHINE),
    ],
    ids=["steps_mermaid", "steps_dot", "machine_mermaid", "machine_dot"],
)
def test_output_is_deterministic(render: Any) -> None:
    first = render()
    assert first.endswith("\n")
    assert all(render() == first for _ in range(3))


def test_machine_rendering_does_not_depend_on_table_order() -> None:
    shuffled = StateMachine(
        entity=RUN_MACHINE.entity,
        initial=RUN_MACHINE.initial,
        transitions=dict(reversed(list(RUN_MACHINE.transitions.items()))),
    )
    assert machine_mermaid(shuffled) == machine_mermaid(RUN_MACHINE)
    assert machine_dot(shuffled) == machine_dot(RUN_MACHINE)


def test_label_escaping() -> None:
    # Ids are identifiers today; the escapes guard labels built from anything else.
    from airflow_wfe.core.spec.diagram import _dot, _mermaid_text

    assert _dot('say "hi" \\ bye\nnext') == '"say \\"hi\\" \\\\ bye\\nnext"'
    assert _mermaid_text('a "b" <c> #d') == "a #quot;b#quot; #lt;c#gt; #35;d"
