"""Bounded specs: the DAG processor runs this code on every parse, so a huge or hostile workflow file
must be refused early or checked in time and memory that grow with its size, not its square."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from airflow_wfe.core.spec.graph import DependencyGraph, simple_cycles
from airflow_wfe.core.spec.loader import MAX_SPEC_BYTES, MAX_STEPS, load_spec, parse_spec
from airflow_wfe.core.spec.validate import validate_spec
from airflow_wfe.exceptions import SpecError


def _chain(n: int, *, irreversible: bool = False) -> str:
    lines = ["name: big", 'version: "1"', "owner: platform", "steps:"]
    for i in range(n):
        lines.append(f"  s{i}:")
        lines.append("    run: os:getcwd")
        if irreversible:
            lines.append("    irreversible: true")
        if i:
            lines.append(f"    needs: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def test_a_long_chain_of_irreversible_steps_validates_in_linear_memory() -> None:
    """5,000 irreversible steps in a chain: every step but the first warns about all those before
    it. Materialising each step's ancestors (the old way) took 12.5 million set entries and listed
    every name in every message; the bound here is far below that and far above the real need."""
    spec = parse_spec(_chain(5_000, irreversible=True)).spec
    tracemalloc.start()
    try:
        problems = validate_spec(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(problems) == 4_999
    last = problems[-1]
    assert last.path == ("steps", "s4999")
    assert "'s0', 's1'" in last.message
    assert "and 4,989 more succeeded" in last.message
    assert len(last.message) < 400
    assert peak < 64 * 1024 * 1024, f"validation peaked at {peak / 2**20:.0f} MiB"


def test_cycles_in_a_long_ring_are_found_without_a_walk_per_node() -> None:
    n = 20_000
    graph = DependencyGraph.build({f"n{i}": [f"n{(i - 1) % n}"] for i in range(n)})
    cycles = simple_cycles(graph, limit=21)
    assert len(cycles) == 1
    assert len(cycles[0]) == n
    assert graph.in_cycle("n0")
    assert graph.waits_for("n5", "n7")


def test_steps_behind_a_cycle_are_named_with_the_blocker_at_the_end_of_their_path() -> None:
    first = "  s0:\n    run: os:getcwd\n"
    text = _chain(3_000).replace(first, first + "    needs: [s0]\n")
    problems = validate_spec(parse_spec(text).spec)
    unreachable = [p for p in problems if p.code == "unreachable"]
    assert len(unreachable) == 2_999
    assert unreachable[-1].message == (
        "can never start: it needs 's2998', which waits on 's0', which is in a cycle"
    )


def test_a_file_past_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# padding\n" * (MAX_SPEC_BYTES // 10 + 1))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    (problem,) = caught.value.problems
    assert problem.code == "too-large"
    assert problem.file == str(path)
    assert "larger than 4 MiB" in problem.message


def test_more_steps_than_the_limit_is_refused_at_the_steps_key() -> None:
    text = "# a generated workflow\n" + _chain(MAX_STEPS + 1)
    with pytest.raises(SpecError) as caught:
        parse_spec(text, file="gen.yaml")
    (problem,) = caught.value.problems
    assert problem.code == "too-large"
    assert problem.line == 5
    assert f"has {MAX_STEPS + 1:,} steps; the limit is {MAX_STEPS:,}" in problem.message
