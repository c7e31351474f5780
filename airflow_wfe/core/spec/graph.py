"""The step graph and the algorithms on it: ancestors, reachability, cycles, a stable order.

Nothing here knows what a step is; a graph is built from names and what each one needs, so the
algorithms are tested and reused apart from the spec rules (:mod:`airflow_wfe.core.spec.validate`)
that read their answers. Edges run the way a run does, from a need to the step that needs it, and
declaration order breaks every tie, so the same file always gives the same answers::

    graph = DependencyGraph.build({"build": [], "test": ["build"], "ship": ["test"]})
    graph.ancestors["ship"]        # frozenset({"build", "test"})
    stable_order(graph)            # ["build", "test", "ship"]
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["DependencyGraph", "closure", "cycle_text", "simple_cycles", "stable_order"]


@dataclass(frozen=True)
class DependencyGraph:
    """A dependency graph with only known nodes in it; unknown names are kept aside, not followed.

    Attributes:
        order: node ids in declaration order, the tie-breaker everywhere so output is stable.
        index: position of each node in ``order``.
        needs: each node's known needs, in the order written.
        downstream: each node's dependants (nodes that need it), in declaration order.
        ancestors: every node each one waits for, transitively; a node in a cycle is its own ancestor.
        unknown: each node's needs that name no node, in the order written.
    """

    order: tuple[str, ...]
    index: Mapping[str, int]
    needs: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]]
    ancestors: Mapping[str, frozenset[str]]
    unknown: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, needs: Mapping[str, Sequence[str]]) -> DependencyGraph:
        """The graph of ``needs`` (node -> what it needs), its keys in declaration order."""
        order = tuple(needs)
        known = {s: tuple(n for n in needs[s] if n in needs) for s in order}
        unknown = {s: tuple(n for n in needs[s] if n not in needs) for s in order}
        dependants: dict[str, list[str]] = {s: [] for s in order}
        for step in order:  # declaration order of the dependants, each once
            for need in known[step]:
                if not dependants[need] or dependants[need][-1] != step:
                    dependants[need].append(step)
        downstream = {s: tuple(dependants[s]) for s in order}
        index = {s: i for i, s in enumerate(order)}
        return cls(order, index, known, downstream, _ancestors(order, known), unknown)

    def in_cycle(self, step: str) -> bool:
        return step in self.ancestors[step]

    @functools.cached_property
    def blockers(self) -> frozenset[str]:
        """Nodes that can never start by themselves: in a cycle, or needing an unknown node."""
        return frozenset(s for s in self.order if self.in_cycle(s) or self.unknown[s])

    def can_start(self, step: str) -> bool:
        """Whether the scheduler could ever start the node (nothing it waits for is blocked)."""
        blockers = self.blockers
        return step not in blockers and not self.ancestors[step] & blockers


def _ancestors(
    order: Sequence[str], needs: Mapping[str, tuple[str, ...]]
) -> dict[str, frozenset[str]]:
    """Every node each one waits for, transitively.

    Nodes outside any cycle get theirs in dependency order, as the union of their needs' sets (one
    pass, instead of a graph walk per node); the nodes left over (in or after a cycle) are walked.
    """
    ancestors: dict[str, frozenset[str]] = {}
    waiting = {s: len(needs[s]) for s in order}
    dependants: dict[str, list[str]] = {s: [] for s in order}
    for step in order:
        for need in needs[step]:
            dependants[need].append(step)
    ready = deque(s for s in order if not waiting[s])
    while ready:
        step = ready.popleft()
        ancestors[step] = frozenset(needs[step]).union(*(ancestors[n] for n in needs[step]))
        for dependant in dependants[step]:
            waiting[dependant] -= 1
            if not waiting[dependant]:
                ready.append(dependant)
    for step in order:
        if step not in ancestors:
            ancestors[step] = frozenset(closure(needs[step], needs))
    return {s: ancestors[s] for s in order}


def closure(start: Iterable[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """Everything reachable from ``start`` along ``edges``, in breadth-first (hence stable) order."""
    seen: dict[str, None] = {}
    queue = deque(start)
    while queue:
        node = queue.popleft()
        if node not in seen:
            seen[node] = None
            queue.extend(edges[node])
    return list(seen)


def cycle_text(cycle: Sequence[str]) -> str:
    """``cycle: a → b → a``: how a cycle is named in every message."""
    return "cycle: " + " → ".join([*cycle, cycle[0]])


def simple_cycles(graph: DependencyGraph, limit: int) -> list[tuple[str, ...]]:
    """Every elementary cycle once (Johnson's algorithm), up to ``limit`` of them.

    Edges run the way the run does (from a need to the node that needs it), so ``a → b`` reads "a,
    then b". Each cycle starts at its earliest-declared node, which is what makes it appear once
    rather than once per member, and cycles come out ordered by that start.
    """
    found: list[tuple[str, ...]] = []
    for first, start in enumerate(graph.order):
        if not graph.in_cycle(start):  # no cycle goes through a node that is not its own ancestor
            continue
        later = set(graph.order[first:])
        # Only the strongly connected part around ``start`` can close a cycle through it.
        reach = closure([start], {n: [d for d in graph.downstream[n] if d in later] for n in later})
        back = closure([start], {n: [u for u in graph.needs[n] if u in later] for n in later})
        component = set(reach) & set(back)
        edges = {n: [d for d in graph.downstream[n] if d in component] for n in component}
        found += _cycles_through(start, edges, limit - len(found))
        if len(found) >= limit:
            break
    return found


def _cycles_through(
    start: str, edges: Mapping[str, Sequence[str]], limit: int
) -> list[tuple[str, ...]]:
    """Johnson's circuit search from ``start`` within its strongly connected component.

    A node stays blocked until a cycle is found through it, which keeps dead ends from being walked
    again and again; iterative, so a long chain cannot hit the recursion limit.
    """
    found: list[tuple[str, ...]] = []
    path = [start]
    blocked = {start}
    blocked_by: dict[str, set[str]] = {}
    stack = [(start, iter(edges[start]))]
    closed = [False]
    while stack:
        node, pending = stack[-1]
        nxt = next(pending, None)
        if nxt is not None:
            if nxt == start:
                found.append(tuple(path))
                closed[-1] = True
                if len(found) >= limit:
                    return found
            elif nxt not in blocked:
                path.append(nxt)
                blocked.add(nxt)
                stack.append((nxt, iter(edges[nxt])))
                closed.append(False)
            continue
        stack.pop()
        path.pop()
        if closed.pop():
            _unblock(node, blocked, blocked_by)
            if closed:
                closed[-1] = True
        else:
            for succ in edges[node]:
                blocked_by.setdefault(succ, set()).add(node)
    return found


def _unblock(node: str, blocked: set[str], blocked_by: dict[str, set[str]]) -> None:
    pending = {node}
    while pending:
        current = pending.pop()
        if current in blocked:
            blocked.discard(current)
            pending.update(blocked_by.pop(current, set()))


def stable_order(graph: DependencyGraph) -> list[str]:
    """The nodes in an order that puts every need first; among ready nodes, the first declared.

    Unknown needs are ignored here (the caller reports them).

    Raises:
        ValueError: when the nodes form a cycle, named in the message (``cycle: a → b → a``).
    """
    waiting = {s: len(graph.needs[s]) for s in graph.order}
    ready = [graph.index[s] for s in graph.order if not waiting[s]]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        step_id = graph.order[heapq.heappop(ready)]
        ordered.append(step_id)
        for dependant in graph.downstream[step_id]:
            waiting[dependant] -= 1
            if not waiting[dependant]:
                heapq.heappush(ready, graph.index[dependant])
    if len(ordered) < len(graph.order):
        raise ValueError(cycle_text(simple_cycles(graph, limit=1)[0]))
    return ordered
