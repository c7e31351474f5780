"""Static checks of a whole workflow: what no single model can see.

The pydantic models reject anything wrong at one key. What is left needs the whole step graph: a
``needs`` that names no step, a cycle, a fan-out over a step that has not finished yet, a step that can
never start, a side effect nothing can undo, a failure that leaves the run half undone. Finding these
before the DAG exists keeps them out of the scheduler, where they would surface as a DAG that never
loads, a task that waits forever or a compensation that cannot succeed.

Every finding is a :class:`~airflow_wfe.core.spec.problems.Problem` with a stable ``code`` (for tools and
tests) and the key path it is about (so the loader can add the line)::

    problems = validate_spec(spec)
    if any(p.severity is Severity.ERROR for p in problems):
        raise SpecError(file, problems)

:func:`topological_order` is the one place that orders steps; the compiler creates tasks in that order
and compensation walks it backwards.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from airflow_wfe.core.spec.models import ForEachFrom, WorkflowSpec
from airflow_wfe.core.spec.problems import KeyPath, Problem, Severity
from airflow_wfe.core.states import RUN_MACHINE, RunState, StateMachine

__all__ = ["topological_order", "validate_spec"]

#: Cycles named before the rest are summed up: a tangled graph has exponentially many, and past a
#: handful more names do not help anyone untangle it.
MAX_CYCLES_REPORTED = 20


@dataclass(frozen=True)
class _Graph:
    """The step graph with only known steps in it; unknown names are reported, not followed.

    Attributes:
        order: step ids in declaration order, the tie-breaker everywhere so output is stable.
        index: position of each step in ``order``.
        needs: each step's known needs, in the order written.
        downstream: each step's dependants (steps that need it), in declaration order.
        ancestors: every step each one waits for, transitively; a step in a cycle is its own ancestor.
        unknown: each step's needs that name no step, in the order written.
    """

    order: tuple[str, ...]
    index: Mapping[str, int]
    needs: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]]
    ancestors: Mapping[str, frozenset[str]]
    unknown: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, spec: WorkflowSpec) -> _Graph:
        order = tuple(spec.steps)
        needs = {s: tuple(n for n in spec.steps[s].needs if n in spec.steps) for s in order}
        unknown = {s: tuple(n for n in spec.steps[s].needs if n not in spec.steps) for s in order}
        dependants: dict[str, list[str]] = {s: [] for s in order}
        for step in order:  # declaration order of the dependants, each once
            for need in needs[step]:
                if not dependants[need] or dependants[need][-1] != step:
                    dependants[need].append(step)
        downstream = {s: tuple(dependants[s]) for s in order}
        return cls(order, _index_of(order), needs, downstream, _ancestors(order, needs), unknown)

    def in_cycle(self, step: str) -> bool:
        return step in self.ancestors[step]

    @functools.cached_property
    def blockers(self) -> frozenset[str]:
        """Steps that can never start by themselves: in a cycle, or needing an unknown step."""
        return frozenset(s for s in self.order if self.in_cycle(s) or self.unknown[s])

    def can_start(self, step: str) -> bool:
        """Whether the scheduler could ever start the step (nothing it waits for is blocked)."""
        blockers = self.blockers
        return step not in blockers and not self.ancestors[step] & blockers


def _index_of(order: Sequence[str]) -> dict[str, int]:
    return {s: i for i, s in enumerate(order)}


def _ancestors(
    order: Sequence[str], needs: Mapping[str, tuple[str, ...]]
) -> dict[str, frozenset[str]]:
    """Every step each one waits for, transitively.

    Steps outside any cycle get theirs in dependency order, as the union of their needs' sets (one
    pass, instead of a graph walk per step); the steps left over (in or after a cycle) are walked.
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
            ancestors[step] = frozenset(_closure(needs[step], needs))
    return {s: ancestors[s] for s in order}


def _closure(start: Iterable[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """Everything reachable from ``start`` along ``edges``, in breadth-first (hence stable) order."""
    seen: dict[str, None] = {}
    queue = deque(start)
    while queue:
        node = queue.popleft()
        if node not in seen:
            seen[node] = None
            queue.extend(edges[node])
    return list(seen)


def _names(steps: Sequence[str]) -> str:
    quoted = [repr(s) for s in steps]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _cycle_text(cycle: Sequence[str]) -> str:
    return "cycle: " + " → ".join([*cycle, cycle[0]])


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    import difflib  # only a file with an unknown name pays for it

    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _simple_cycles(graph: _Graph, limit: int) -> list[tuple[str, ...]]:
    """Every elementary cycle once (Johnson's algorithm), up to ``limit`` of them.

    Edges run the way the run does (from a need to the step that needs it), so ``a → b`` reads "a,
    then b". Each cycle starts at its earliest-declared step, which is what makes it appear once
    rather than once per member, and cycles come out ordered by that start.
    """
    found: list[tuple[str, ...]] = []
    for first, start in enumerate(graph.order):
        if not graph.in_cycle(start):  # no cycle goes through a step that is not its own ancestor
            continue
        later = set(graph.order[first:])
        # Only the strongly connected part around ``start`` can close a cycle through it.
        reach = _closure(
            [start], {n: [d for d in graph.downstream[n] if d in later] for n in later}
        )
        back = _closure([start], {n: [u for u in graph.needs[n] if u in later] for n in later})
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

    A step stays blocked until a cycle is found through it, which keeps dead ends from being walked
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


def topological_order(spec: WorkflowSpec) -> list[str]:
    """The steps in an order that runs every need first; reversed, the order to compensate in.

    Stable: whenever several steps are ready, the one declared first comes first, so the same file
    always gives the same order (and the same DAG).

    Raises:
        ValueError: when a step needs an unknown step, or the steps form a cycle (named in the
            message, e.g. ``cycle: build → test → build``). :func:`validate_spec` reports both first.
    """
    for step_id, step in spec.steps.items():
        for need in step.needs:
            if need not in spec.steps:
                raise ValueError(f"step {step_id!r} needs unknown step {need!r}")
    graph = _Graph.of(spec)
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
        raise ValueError(_cycle_text(_simple_cycles(graph, limit=1)[0]))
    return ordered


def validate_spec(
    spec: WorkflowSpec, *, machine: StateMachine[RunState] = RUN_MACHINE
) -> list[Problem]:
    """Every problem of the whole workflow: errors first, then warnings.

    Within a severity, problems come check by check and, within a check, in declaration order, so
    the same file always prints the same report.

    Args:
        spec: a workflow that already passed its models.
        machine: the run state machine failures must end in; a parameter so a broken table can be
            tested, the default is the real one.
    """
    graph = _Graph.of(spec)
    problems = [
        *_unknown_steps(spec),
        *_cycles(spec, graph),
        *_unreachable(spec, graph),
        *_fan_out_sources(spec, graph),
        *_gate_timeouts(spec),
        *_uncompensated(spec),
        *_terminal_paths(machine),
        *_irreversible_on_failure_path(spec, graph),
        *_non_idempotent_retries(spec),
        *_max_parallel(spec),
    ]
    return sorted(problems, key=lambda p: p.severity is not Severity.ERROR)


def _unknown_steps(spec: WorkflowSpec) -> list[Problem]:
    """A name that is not a step is almost always a typo, so the closest id is suggested."""
    problems = []
    for step_id, step in spec.steps.items():
        for i, need in enumerate(step.needs):
            if need not in spec.steps:
                problems.append(
                    Problem(
                        f"needs unknown step {need!r}",
                        path=("steps", step_id, "needs", i),
                        code="unknown-step",
                        suggestion=_suggest(need, spec.steps),
                    )
                )
        if isinstance(step.for_each, ForEachFrom) and step.for_each.from_step not in spec.steps:
            source = step.for_each.from_step
            problems.append(
                Problem(
                    f"fans out over the result of unknown step {source!r}",
                    path=("steps", step_id, "for_each", "from"),
                    code="unknown-step",
                    suggestion=_suggest(source, spec.steps),
                )
            )
    return problems


def _cycles(spec: WorkflowSpec, graph: _Graph) -> list[Problem]:
    """Steps that wait for each other never start; the path points at the need closing the loop."""
    cycles = _simple_cycles(graph, limit=MAX_CYCLES_REPORTED + 1)
    problems = []
    for cycle in cycles[:MAX_CYCLES_REPORTED]:
        first, last = cycle[0], cycle[-1]
        problems.append(
            Problem(
                _cycle_text(cycle),
                path=("steps", first, "needs", spec.steps[first].needs.index(last)),
                code="cycle",
            )
        )
    if len(cycles) > MAX_CYCLES_REPORTED:
        problems.append(
            Problem(
                f"more than {MAX_CYCLES_REPORTED} cycles; only the first {MAX_CYCLES_REPORTED} "
                "are named",
                path=("steps",),
                code="cycle",
            )
        )
    return problems


def _unreachable(spec: WorkflowSpec, graph: _Graph) -> list[Problem]:
    """Steps downstream of a cycle or of an unknown need would wait forever in the scheduler.

    The blocked steps themselves are already reported (as ``cycle`` or ``unknown-step``); this names
    the ones that only inherit the problem, pointing at the need through which they do.
    """
    blockers = graph.blockers
    problems = []
    for step_id in graph.order:
        if step_id in blockers or not graph.ancestors[step_id] & blockers:
            continue
        needs = spec.steps[step_id].needs
        via = next(
            n for n in graph.needs[step_id] if n in blockers or graph.ancestors[n] & blockers
        )
        blocker = next(s for s in _closure([via], graph.needs) if s in blockers)
        why = "is in a cycle"
        if not graph.in_cycle(blocker):
            why = f"needs unknown step {graph.unknown[blocker][0]!r}"
        chain = f"{via!r}, which {why}"
        if blocker != via:
            chain = f"{via!r}, which waits on {blocker!r}, which {why}"
        problems.append(
            Problem(
                f"can never start: it needs {chain}",
                path=("steps", step_id, "needs", needs.index(via)),
                code="unreachable",
            )
        )
    return problems


def _fan_out_sources(spec: WorkflowSpec, graph: _Graph) -> list[Problem]:
    """A fan-out reads its source's result, which exists only once that source has finished."""
    problems = []
    for step_id, step in spec.steps.items():
        if not isinstance(step.for_each, ForEachFrom):
            continue
        source = step.for_each.from_step
        if source not in spec.steps or source in graph.ancestors[step_id]:
            continue
        if source == step_id:
            message, suggestion = "fans out over its own result, which does not exist yet", None
        else:
            message = (
                f"fans out over the result of {source!r}, which is not upstream: it must finish "
                "before this step starts"
            )
            suggestion = f"add {source!r} to needs"
        problems.append(
            Problem(
                message,
                path=("steps", step_id, "for_each", "from"),
                code="fan-out-source",
                suggestion=suggestion,
            )
        )
    return problems


def _gate_timeouts(spec: WorkflowSpec) -> list[Problem]:
    """A gate without a timeout can hold a run (and its pool slots) forever waiting for a human."""
    return [
        Problem(
            "gate has no timeout: a pending decision would hold the run forever",
            path=("steps", step_id, "gate"),
            code="gate-timeout",
            suggestion="add timeout (e.g. 4h) and, if it should not reject, on_timeout",
        )
        for step_id, step in spec.steps.items()
        if step.gate is not None and step.gate.timeout is None
    ]


def _uncompensated(spec: WorkflowSpec) -> list[Problem]:
    """A failed run undoes what succeeded; a side effect must say how, or admit it cannot be."""
    return [
        Problem(
            "has side effects but no compensate: a failed run could not undo it",
            path=("steps", step_id, "side_effects"),
            code="side-effects-uncompensated",
            suggestion="add compensate, or set irreversible: true if it cannot be undone",
        )
        for step_id, step in spec.steps.items()
        if step.side_effects and step.compensate is None and not step.irreversible
    ]


def _terminal_paths(machine: StateMachine[RunState]) -> list[Problem]:
    """Every run, and above all a failed one, must be able to end; a state that cannot would leave
    runs open forever in the store, the UI and the metrics."""
    reverse: dict[RunState, set[RunState]] = {}
    for source, targets in machine.transitions.items():
        for target in targets:
            reverse.setdefault(target, set()).add(source)
    can_end = set(
        _closure(machine.terminal, {s: sorted(reverse.get(s, ())) for s in machine.states})
    )
    ends = ", ".join(s for s in RunState if s in machine.terminal) or "none"
    problems = []
    if RunState.FAILED not in machine.states:
        problems.append(
            Problem(
                f"the {machine.entity} state machine has no {RunState.FAILED} state: a failed run "
                "has no way to end",
                code="no-terminal-path",
            )
        )
    for state in (s for s in RunState if s in machine.states and s not in can_end):
        what = (
            "a failed run can never end" if state is RunState.FAILED else "a run there never ends"
        )
        problems.append(
            Problem(
                f"{machine.entity} state {state} reaches no terminal state ({ends}): {what}",
                code="no-terminal-path",
            )
        )
    return problems


def _irreversible_on_failure_path(spec: WorkflowSpec, graph: _Graph) -> list[Problem]:
    """A step that can fail after an irreversible step succeeded leaves a run that compensation
    cannot fully undo.

    The irreversible step may have succeeded before a step fails if it is upstream of it, or if
    neither waits for the other (they may run in parallel). If it is downstream, the failure stops it
    from running at all, which is the safe shape. Steps that can never start are left out: they
    neither fail nor succeed, and their errors are already reported.
    """
    runnable = [s for s in graph.order if graph.can_start(s)]
    irreversible = [s for s in runnable if spec.steps[s].irreversible]
    problems = []
    for step_id in runnable:
        before = [r for r in irreversible if r != step_id and step_id not in graph.ancestors[r]]
        if not before:
            continue
        parallel = [r for r in before if r not in graph.ancestors[step_id]]
        suggestion = None
        if parallel:
            suggestion = (
                f"make {_names(parallel)} need this step so it runs only after this succeeds"
            )
        problems.append(
            Problem(
                f"if this step fails after {_names(before)} succeeded, the run cannot be fully "
                f"compensated and ends {RunState.COMPENSATION_FAILED} ({_names(before)} "
                f"{'is' if len(before) == 1 else 'are'} irreversible)",
                path=("steps", step_id),
                severity=Severity.WARNING,
                code="irreversible-on-failure-path",
                suggestion=suggestion,
            )
        )
    return problems


def _non_idempotent_retries(spec: WorkflowSpec) -> list[Problem]:
    """A retry repeats a side effect unless the step is idempotent; the file cannot prove it is."""
    problems = []
    for step_id, step in spec.steps.items():
        attempts = spec.step_retry(step_id).max_attempts
        if not step.side_effects or attempts <= 1:
            continue
        path: KeyPath = ("steps", step_id, "retry") if step.retry else ("defaults", "retry")
        problems.append(
            Problem(
                f"step {step_id!r} has side effects and is tried up to {attempts} times: every try "
                "must be idempotent, or a retry repeats the effect",
                path=path,
                severity=Severity.WARNING,
                code="non-idempotent-retry",
                suggestion="make the effect idempotent (e.g. an idempotency key) or set "
                "max_attempts: 1",
            )
        )
    return problems


def _max_parallel(spec: WorkflowSpec) -> list[Problem]:
    """A limit above the number of items never limits anything: likely a stale or mistyped value."""
    problems = []
    for step_id, step in spec.steps.items():
        if not isinstance(step.for_each, tuple) or step.max_parallel is None:
            continue
        items = len(step.for_each)
        if step.max_parallel > items:
            problems.append(
                Problem(
                    f"max_parallel is {step.max_parallel} but for_each lists only {items} "
                    f"item{'' if items == 1 else 's'}: it never limits anything",
                    path=("steps", step_id, "max_parallel"),
                    severity=Severity.WARNING,
                    code="max-parallel-too-large",
                    suggestion="drop max_parallel"
                    if items <= 1
                    else f"lower it to {items} or less",
                )
            )
    return problems
