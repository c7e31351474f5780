"""The graph algorithms on their own, with names only (the spec rules are in test_validate.py)."""

from __future__ import annotations

import pytest

from airflow_wfe.core.spec.graph import (
    DependencyGraph,
    closure,
    cycle_text,
    simple_cycles,
    stable_order,
)


def test_ancestors_downstream_and_unknown_needs() -> None:
    graph = DependencyGraph.build({"a": [], "b": ["a"], "c": ["b", "ghost"], "d": ["a"]})
    assert graph.ancestors_of("c") == {"a", "b"}
    assert graph.waits_for("c", "a")
    assert not graph.waits_for("a", "c")
    assert graph.downstream["a"] == ("b", "d")
    assert graph.unknown["c"] == ("ghost",)
    assert graph.blockers == {"c"}
    assert graph.can_start("d")
    assert not graph.can_start("c")


def test_stable_order_breaks_ties_by_declaration() -> None:
    graph = DependencyGraph.build({"z": [], "y": [], "x": ["z", "y"], "w": ["y"]})
    assert stable_order(graph) == ["z", "y", "x", "w"]


def test_cycles_are_named_once_from_their_earliest_step() -> None:
    graph = DependencyGraph.build({"a": ["c"], "b": ["a"], "c": ["b"], "d": ["d"], "e": ["a"]})
    assert simple_cycles(graph, limit=10) == [("a", "b", "c"), ("d",)]
    assert simple_cycles(graph, limit=1) == [("a", "b", "c")]
    assert graph.in_cycle("a")
    assert not graph.in_cycle("e")
    assert not graph.can_start("e")
    with pytest.raises(ValueError, match=r"^cycle: a → b → c → a$"):
        stable_order(graph)


def test_closure_is_breadth_first() -> None:
    edges = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert closure(["a"], edges) == ["a", "b", "c", "d"]
    assert cycle_text(("x", "y")) == "cycle: x → y → x"
