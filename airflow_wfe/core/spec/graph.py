"""The step graph and the algorithms on it: strong components, reachability, cycles, a stable order.

Nothing here knows what a step is; a graph is built from names and what each one needs, so the
algorithms are tested and reused apart from the spec rules (:mod:`airflow_wfe.core.spec.validate`)
that read their answers. Edges run the way a run does, from a need to the step that needs it, and
declaration order breaks every tie, so the same file always gives the same answers::

    graph = DependencyGraph.build({"build": [], "test": ["build"], "ship": ["test"]})
    graph.ancestors_of("ship")     # frozenset({"build", "test"})
    stable_order(graph)            # ["build", "test", "ship"]

The same code runs in Airflow's DAG processor on every parse, so nothing here may grow with the
square of a workflow's size: building the graph, finding cycles and finding the steps a cycle or an
unknown name blocks are linear. Reachability questions ("does a wait for b?") use one bit set of
ancestors per strong component, built only when a rule asks: n²/8 bytes, 12.5 MB at the
10,000-step limit (:data:`airflow_wfe.core.spec.limits.MAX_STEPS`), and word-wide operations.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
        unknown: each node's needs that name no node, in the order written.
    """

    order: tuple[str, ...]
    index: Mapping[str, int]
    needs: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]]
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
        return cls(order, index, known, downstream, unknown)

    @functools.cached_property
    def components(self) -> tuple[tuple[str, ...], ...]:
        """The strong components, each needs-first: a component comes after every one it needs."""
        return tuple(strong_components(self.order, self.needs))

    @functools.cached_property
    def _component_of(self) -> dict[str, int]:
        return {node: i for i, members in enumerate(self.components) for node in members}

    @functools.cached_property
    def cyclic(self) -> frozenset[str]:
        """Nodes on a cycle: in a component of several nodes, or needing themselves."""
        return frozenset(
            node
            for members in self.components
            for node in members
            if len(members) > 1 or node in self.needs[node]
        )

    def in_cycle(self, step: str) -> bool:
        return step in self.cyclic

    @functools.cached_property
    def blockers(self) -> frozenset[str]:
        """Nodes that can never start by themselves: in a cycle, or needing an unknown node."""
        return frozenset(s for s in self.order if s in self.cyclic or self.unknown[s])

    @functools.cached_property
    def blocked(self) -> frozenset[str]:
        """Nodes that are not blockers but wait, directly or not, for one: they never start either."""
        reached = closure(sorted(self.blockers, key=self.index.__getitem__), self.downstream)
        return frozenset(reached) - self.blockers

    def can_start(self, step: str) -> bool:
        """Whether the scheduler could ever start the node (nothing it waits for is blocked)."""
        return step not in self.blockers and step not in self.blocked

    @functools.cached_property
    def _ancestor_bits(self) -> list[int]:
        """Per component, the bit set (bit i = ``order[i]``) of every node its members wait for.

        Components come needs-first, so each set is the union of its needs' sets and bits, built in
        one pass; a component on a cycle waits for its own members too.
        """
        bits: list[int] = []
        component_of = self._component_of
        for members in self.components:
            total = 0
            own = component_of[members[0]]
            for node in members:
                for need in self.needs[node]:
                    total |= 1 << self.index[need]
                    if component_of[need] != own:
                        total |= bits[component_of[need]]
            bits.append(total)
        return bits

    @functools.cached_property
    def _descendant_bits(self) -> list[int]:
        """Per component, the bit set of every node that waits for its members (the mirror)."""
        bits: list[int] = [0] * len(self.components)
        component_of = self._component_of
        for i in range(len(self.components) - 1, -1, -1):
            total = 0
            for node in self.components[i]:
                for dependant in self.downstream[node]:
                    total |= 1 << self.index[dependant]
                    if component_of[dependant] != i:
                        total |= bits[component_of[dependant]]
            bits[i] = total
        return bits

    def ancestor_bits(self, step: str) -> int:
        """Every node ``step`` waits for, transitively, as a bit set over :attr:`order`."""
        return self._ancestor_bits[self._component_of[step]]

    def descendant_bits(self, step: str) -> int:
        """Every node that waits for ``step``, transitively, as a bit set over :attr:`order`."""
        return self._descendant_bits[self._component_of[step]]

    def waits_for(self, step: str, other: str) -> bool:
        """Whether ``step`` waits, directly or not, for ``other`` (a node on a cycle waits for
        itself)."""
        return bool(self.ancestor_bits(step) >> self.index[other] & 1)

    def ancestors_of(self, step: str) -> frozenset[str]:
        """Every node ``step`` waits for, transitively, as names."""
        return frozenset(self.names(self.ancestor_bits(step)))

    def names(self, bits: int, limit: int | None = None) -> Iterator[str]:
        """The nodes of a bit set in declaration order, the first ``limit`` of them."""
        count = 0
        while bits and (limit is None or count < limit):
            low = bits & -bits
            yield self.order[low.bit_length() - 1]
            bits ^= low
            count += 1

    def bits(self, nodes: Iterable[str]) -> int:
        """The bit set of ``nodes``."""
        total = 0
        for node in nodes:
            total |= 1 << self.index[node]
        return total


def strong_components(
    order: Sequence[str], edges: Mapping[str, Sequence[str]]
) -> list[tuple[str, ...]]:
    """Tarjan's strong components, iterative (a long chain cannot hit the recursion limit).

    A component is listed after every component it has an edge to, so with edges pointing at needs
    the result runs needs-first. Members keep declaration order.
    """
    position = {node: i for i, node in enumerate(order)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[tuple[str, ...]] = []
    for root in order:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            nxt = next(pending, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                found.append(tuple(sorted(members, key=position.__getitem__)))
    return found


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

    As in Johnson's algorithm, each round takes the strong components of the nodes not yet used as
    a start and searches only from the earliest node that is on a cycle among them, so every round
    finds a cycle and the work is linear per cycle found (a ring of 100,000 nodes takes one round,
    not 100,000).
    """
    found: list[tuple[str, ...]] = []
    remaining = [s for s in graph.order if graph.in_cycle(s)]
    while remaining and len(found) < limit:
        alive = set(remaining)
        edges = {n: [d for d in graph.downstream[n] if d in alive] for n in remaining}
        start, component = _first_cyclic_component(remaining, edges)
        if start is None:
            break
        inside = {n: [d for d in edges[n] if d in component] for n in component}
        found += _cycles_through(start, inside, limit - len(found))
        remaining = [s for s in remaining if graph.index[s] > graph.index[start]]
    return found


def _first_cyclic_component(
    nodes: Sequence[str], edges: Mapping[str, Sequence[str]]
) -> tuple[str | None, set[str]]:
    """The earliest node (in ``nodes`` order) on a cycle of ``edges``, and its strong component."""
    best: tuple[str | None, set[str]] = (None, set())
    position = {n: i for i, n in enumerate(nodes)}
    for members in strong_components(nodes, edges):
        first = members[0]
        if len(members) == 1 and first not in edges[first]:
            continue
        if best[0] is None or position[first] < position[best[0]]:
            best = (first, set(members))
    return best


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
