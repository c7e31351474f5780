"""Diagrams of a workflow's steps and of a state machine, as Mermaid or Graphviz DOT text.

Text, not images: Mermaid renders in GitHub, GitLab and most docs sites, DOT in Graphviz, and both
diff well in review. ``wfe render`` prints them and the docs embed the state machines from the same
table the recorder enforces, so a picture can never drift from the rules.

The output is deterministic (steps in declaration order, states in the order their enum declares
them, edges sorted the same way), so a rendered diagram can be committed and checked in CI.

Node names are the step ids; a step's compensation is the node ``undo_<id>`` (with ``_`` appended
in the unlikely case a step already has that id). DOT quotes every id. Mermaid cannot quote ids, so a
name that is a Mermaid keyword (``end``, ``style``, ...) gets a ``step_`` prefix there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from airflow_wfe.core.spec.models import ForEachFrom, OperatorSpec, StepSpec, WorkflowSpec
from airflow_wfe.core.states import StateMachine

__all__ = ["machine_dot", "machine_mermaid", "steps_dot", "steps_mermaid"]

_INDENT: Final = "    "
_PLAIN_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Words Mermaid reads as syntax where a node id is expected (compared in lower case).
_MERMAID_KEYWORDS: Final = frozenset(
    {
        "as",
        "call",
        "class",
        "classdef",
        "click",
        "default",
        "direction",
        "end",
        "flowchart",
        "graph",
        "href",
        "linkstyle",
        "note",
        "state",
        "style",
        "subgraph",
    }
)


# --- shared naming ----------------------------------------------------------------------------


def _undo_nodes(spec: WorkflowSpec) -> dict[str, str]:
    """``undo_<id>`` for each compensated step, never colliding with a step id or another undo."""
    taken = set(spec.steps)
    nodes: dict[str, str] = {}
    for step_id, step in spec.steps.items():
        if step.compensate is None:
            continue
        name = f"undo_{step_id}"
        while name in taken:
            name += "_"
        taken.add(name)
        nodes[step_id] = name
    return nodes


def _markers(step: StepSpec) -> list[str]:
    """What a reader must notice about a step before it runs or when the run fails."""
    markers = []
    if step.gate is not None:
        markers.append("gate")
    if isinstance(step.for_each, ForEachFrom):
        markers.append(f"fan-out over {step.for_each.from_step}")
    elif step.for_each is not None:
        markers.append(f"fan-out ×{len(step.for_each)}")
    if step.compensate is not None:
        markers.append("compensate")
    if step.irreversible:
        markers.append("irreversible")
    return markers


def _compensation_target(step: StepSpec) -> str:
    compensate = step.compensate
    return compensate.operator if isinstance(compensate, OperatorSpec) else str(compensate)


def _edges(spec: WorkflowSpec) -> list[tuple[str, str]]:
    """``(need, step)`` for each known need, in declaration order; unknown needs are validation's
    business, and drawing them would invent nodes."""
    return [
        (need, step_id)
        for step_id, step in spec.steps.items()
        for need in step.needs
        if need in spec.steps
    ]


def _state_order(machine: StateMachine[Any]) -> list[str]:
    """States in the order their enum declares them: the order of a run's life, not of hashes."""
    return [s for s in type(machine.initial) if s in machine.states]


def _transitions(machine: StateMachine[Any]) -> list[tuple[str, str]]:
    order = {s: i for i, s in enumerate(_state_order(machine))}
    return sorted(
        ((source, target) for source, targets in machine.transitions.items() for target in targets),
        key=lambda edge: (order[edge[0]], order[edge[1]]),
    )


# --- Mermaid ----------------------------------------------------------------------------------


def _mermaid_ids(names: Iterable[str]) -> dict[str, str]:
    """A Mermaid-safe id for each name: itself when plain, else ``step_``-prefixed, kept unique."""
    names = list(names)
    taken = set(names)
    ids: dict[str, str] = {}
    for name in names:
        if _PLAIN_ID.match(name) and name.lower() not in _MERMAID_KEYWORDS:
            ids[name] = name
            continue
        candidate = "step_" + re.sub(r"\W", "_", name)
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _mermaid_text(text: str) -> str:
    """A label for inside ``"..."``: Mermaid reads entity codes, not backslash escapes."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def steps_mermaid(spec: WorkflowSpec) -> str:
    """The step graph as a Mermaid flowchart.

    Edges run from a need to the step that needs it; gates are hexagons; each compensation is a
    rounded node ``undo_<id>`` joined to its step by a dashed edge.
    """
    undo = _undo_nodes(spec)
    ids = _mermaid_ids([*spec.steps, *undo.values()])
    lines = ["flowchart TD"]
    for step_id, step in spec.steps.items():
        markers = _markers(step)
        label = _mermaid_text(f"{step_id} ({', '.join(markers)})" if markers else step_id)
        opening, closing = ("{{", "}}") if step.gate is not None else ("[", "]")
        lines.append(f'{_INDENT}{ids[step_id]}{opening}"{label}"{closing}')
    for step_id, node in undo.items():
        label = _mermaid_text(f"undo {step_id}: {_compensation_target(spec.steps[step_id])}")
        lines.append(f'{_INDENT}{ids[node]}(["{label}"])')
    lines += [f"{_INDENT}{ids[need]} --> {ids[step_id]}" for need, step_id in _edges(spec)]
    lines += [f"{_INDENT}{ids[step_id]} -.-> {ids[node]}" for step_id, node in undo.items()]
    return "\n".join(lines) + "\n"


def machine_mermaid(machine: StateMachine[Any]) -> str:
    """A state machine as a Mermaid ``stateDiagram-v2``: start, every transition, every end."""
    states = _state_order(machine)
    ids = _mermaid_ids(states)
    lines = ["stateDiagram-v2", f"{_INDENT}[*] --> {ids[machine.initial]}"]
    lines += [f"{_INDENT}{ids[a]} --> {ids[b]}" for a, b in _transitions(machine)]
    lines += [f"{_INDENT}{ids[s]} --> [*]" for s in states if s in machine.terminal]
    return "\n".join(lines) + "\n"


# --- DOT --------------------------------------------------------------------------------------


def _dot(text: str) -> str:
    """A DOT quoted string; backslash first, so the quote's escape is not escaped again."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_attrs(attrs: Mapping[str, str]) -> str:
    return " [" + ", ".join(f"{key}={_dot(value)}" for key, value in attrs.items()) + "]"


def _dot_graph(name: str, head: Sequence[str], body: Sequence[str]) -> str:
    lines = [f"digraph {_dot(name)} {{", *(_INDENT + line for line in (*head, *body)), "}"]
    return "\n".join(lines) + "\n"


def steps_dot(spec: WorkflowSpec) -> str:
    """The step graph as a Graphviz digraph, with the same nodes and edges as :func:`steps_mermaid`."""
    undo = _undo_nodes(spec)
    body = []
    for step_id, step in spec.steps.items():
        markers = _markers(step)
        attrs = {"label": "\n".join([step_id, ", ".join(markers)]) if markers else step_id}
        if step.gate is not None:
            attrs["shape"] = "hexagon"
        if step.irreversible:
            attrs["penwidth"] = "2"
        body.append(f"{_dot(step_id)}{_dot_attrs(attrs)};")
    for step_id, node in undo.items():
        label = f"undo {step_id}\n{_compensation_target(spec.steps[step_id])}"
        body.append(f"{_dot(node)}{_dot_attrs({'label': label, 'style': 'rounded,dashed'})};")
    body += [f"{_dot(need)} -> {_dot(step_id)};" for need, step_id in _edges(spec)]
    body += [f"{_dot(step_id)} -> {_dot(node)} [style=dashed];" for step_id, node in undo.items()]
    return _dot_graph(spec.name, ["rankdir=TB;", "node [shape=box];"], body)


def machine_dot(machine: StateMachine[Any]) -> str:
    """A state machine as a Graphviz digraph: a point for the start, double circles for the ends."""
    start = "__start__"
    body = [f"{_dot(start)} [shape=point];", f"{_dot(start)} -> {_dot(machine.initial)};"]
    for state in _state_order(machine):
        shape = "doublecircle" if state in machine.terminal else "circle"
        body.append(f"{_dot(state)} [shape={shape}];")
    body += [f"{_dot(a)} -> {_dot(b)};" for a, b in _transitions(machine)]
    return _dot_graph(machine.entity, ["rankdir=LR;"], body)
