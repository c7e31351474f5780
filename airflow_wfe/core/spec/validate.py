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
and compensation walks it backwards. The graph algorithms these rules stand on (ancestors, cycles, the
stable order) are in :mod:`airflow_wfe.core.spec.graph`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from airflow_wfe.core.spec.graph import (
    DependencyGraph,
    closure,
    cycle_text,
    simple_cycles,
    stable_order,
)
from airflow_wfe.core.spec.models import ForEachFrom, WorkflowSpec
from airflow_wfe.core.spec.problems import KeyPath, Problem, Severity
from airflow_wfe.core.states import RUN_MACHINE, RunState, StateMachine

__all__ = ["topological_order", "validate_spec"]

#: Cycles named before the rest are summed up: a tangled graph has exponentially many, and past a
#: handful more names do not help anyone untangle it.
MAX_CYCLES_REPORTED = 20
#: Steps named in one message before the rest are counted: a message listing thousands of names
#: helps no one, and listing every one for every step would grow with the square of the workflow.
MAX_NAMES = 10


def _graph_of(spec: WorkflowSpec) -> DependencyGraph:
    return DependencyGraph.build({step_id: step.needs for step_id, step in spec.steps.items()})


def _names(steps: Sequence[str], more: int = 0) -> str:
    """``'a', 'b' and 'c'``; past :data:`MAX_NAMES`, ``'a', ... and 9,990 more``."""
    quoted = [repr(s) for s in steps]
    if more > 0:
        quoted.append(f"{more:,} more")
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    import difflib  # only a file with an unknown name pays for it

    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"did you mean {close[0]!r}?" if close else None


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
    return stable_order(_graph_of(spec))


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
    graph = _graph_of(spec)
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


def _cycles(spec: WorkflowSpec, graph: DependencyGraph) -> list[Problem]:
    """Steps that wait for each other never start; the path points at the need closing the loop."""
    cycles = simple_cycles(graph, limit=MAX_CYCLES_REPORTED + 1)
    problems = []
    for cycle in cycles[:MAX_CYCLES_REPORTED]:
        first, last = cycle[0], cycle[-1]
        problems.append(
            Problem(
                cycle_text(cycle),
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


def _unreachable(spec: WorkflowSpec, graph: DependencyGraph) -> list[Problem]:
    """Steps downstream of a cycle or of an unknown need would wait forever in the scheduler.

    The blocked steps themselves are already reported (as ``cycle`` or ``unknown-step``); this names
    the ones that only inherit the problem, pointing at the need through which they do and at the
    blocker at the end of that path. Blocked steps form no cycle (a step on one is a blocker), so
    one pass in dependency order finds every path: linear, however long the chain behind a cycle.
    """
    blockers, blocked = graph.blockers, graph.blocked
    if not blocked:
        return []
    root: dict[str, str] = {}
    problems = []
    for members in graph.components:  # needs first, so a need's root is known before its own
        step_id = members[0]
        if step_id not in blocked:
            continue
        needs = spec.steps[step_id].needs
        via = next(n for n in graph.needs[step_id] if n in blockers or n in blocked)
        blocker = root[step_id] = via if via in blockers else root[via]
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
    return sorted(problems, key=lambda p: graph.index[str(p.path[1])])


def _fan_out_sources(spec: WorkflowSpec, graph: DependencyGraph) -> list[Problem]:
    """A fan-out reads its source's result, which exists only once that source has finished."""
    problems = []
    for step_id, step in spec.steps.items():
        if not isinstance(step.for_each, ForEachFrom):
            continue
        source = step.for_each.from_step
        if source not in spec.steps or (source != step_id and graph.waits_for(step_id, source)):
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
        closure(machine.terminal, {s: sorted(reverse.get(s, ())) for s in machine.states})
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


def _irreversible_on_failure_path(spec: WorkflowSpec, graph: DependencyGraph) -> list[Problem]:
    """A step that can fail after an irreversible step succeeded leaves a run that compensation
    cannot fully undo.

    The irreversible step may have succeeded before a step fails if it is upstream of it, or if
    neither waits for the other (they may run in parallel). If it is downstream, the failure stops it
    from running at all, which is the safe shape. Steps that can never start are left out: they
    neither fail nor succeed, and their errors are already reported.
    """
    runnable = [s for s in graph.order if graph.can_start(s)]
    irreversible = graph.bits(s for s in runnable if spec.steps[s].irreversible)
    problems = []
    for step_id in runnable if irreversible else ():
        # Irreversible steps other than this one that do not wait for it (bit sets, so a long
        # chain of irreversible steps costs word operations, not a pass per pair).
        before_bits = irreversible & ~graph.descendant_bits(step_id) & ~graph.bits([step_id])
        if not before_bits:
            continue
        count = before_bits.bit_count()
        before = _names(list(graph.names(before_bits, MAX_NAMES)), count - MAX_NAMES)
        parallel_bits = before_bits & ~graph.ancestor_bits(step_id)
        suggestion = None
        if parallel_bits:
            parallel = list(graph.names(parallel_bits, MAX_NAMES))
            suggestion = (
                f"make {_names(parallel, parallel_bits.bit_count() - MAX_NAMES)} need this step "
                "so it runs only after this succeeds"
            )
        problems.append(
            Problem(
                f"if this step fails after {before} succeeded, the run cannot be fully "
                f"compensated and ends {RunState.COMPENSATION_FAILED} ({before} "
                f"{'is' if count == 1 else 'are'} irreversible)",
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
