"""Compiling a workflow spec into an ordinary, governed Airflow DAG.

The result is plain Airflow: a ``PythonOperator`` (or the operator the spec names) per step, ``needs``
as dependencies, ``compensate`` / ``irreversible`` as the saga's compensation tasks, retries/backoff/max delay/timeouts as the operators' own arguments, non-retryable
exceptions through Airflow's ``retry_policy``, fan-out through dynamic task mapping. The DAG carries
the ``wfe`` tag, so the listeners govern it like any hand-written DAG; the spec's version and content
hash are registered for the recorder (see :mod:`airflow_wfe.adapters.compile.provenance`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_wfe.adapters.compile.gates import (
    budget_policy,
    canary_task,
    cost_hook,
    gate_task,
    quality_task,
)
from airflow_wfe.adapters.compile.provenance import SpecInfo, register_spec
from airflow_wfe.adapters.compile.resolve import (
    ResolveError,
    resolve_callable,
    resolve_class,
    search_path,
)
from airflow_wfe.config import GOVERNED_TAG
from airflow_wfe.core.spec.loader import LoadedSpec
from airflow_wfe.core.spec.models import Backoff, ForEachFrom, OperatorSpec, StepSpec, WorkflowSpec
from airflow_wfe.core.spec.problems import Problem, Severity
from airflow_wfe.core.spec.validate import topological_order, validate_spec
from airflow_wfe.engine.preflight import DAG_BUDGET_ARG
from airflow_wfe.exceptions import SpecError

__all__ = ["build_dag"]


def _single(item: Any) -> list[Any]:
    """Fan-out: each mapped task instance gets one element as its first positional argument."""
    return [item]


def _exception_path(name: str) -> str:
    return name if "." in name else f"builtins.{name}"


def _retry_kwargs(spec: WorkflowSpec, step_id: str) -> dict[str, Any]:
    retry = spec.step_retry(step_id)
    kwargs: dict[str, Any] = {
        "retries": retry.max_attempts - 1,
        "retry_delay": retry.initial_delay,
        "retry_exponential_backoff": retry.multiplier
        if retry.backoff is Backoff.EXPONENTIAL
        else 0,
    }
    if retry.max_delay is not None:
        kwargs["max_retry_delay"] = retry.max_delay
    if retry.non_retryable:
        from airflow.sdk.definitions.retry_policy import (
            ExceptionRetryPolicy,
            RetryAction,
            RetryRule,
        )

        kwargs["retry_policy"] = ExceptionRetryPolicy(
            rules=[
                RetryRule(
                    exception=[_exception_path(name) for name in retry.non_retryable],
                    action=RetryAction.FAIL,
                    reason="declared non_retryable in the workflow spec",
                )
            ]
        )
    return kwargs


def _common_kwargs(spec: WorkflowSpec, step_id: str, step: StepSpec) -> dict[str, Any]:
    kwargs = _retry_kwargs(spec, step_id)
    timeout = spec.step_timeout(step_id)
    if timeout is not None:
        kwargs["execution_timeout"] = timeout
    pool = step.pool or spec.defaults.pool
    if pool:
        kwargs["pool"] = pool
    if step.pool_slots:
        kwargs["pool_slots"] = step.pool_slots
    if step.max_parallel:
        kwargs["max_active_tis_per_dagrun"] = step.max_parallel
    if step.description:
        kwargs["doc_md"] = step.description
    return kwargs


def _make_task(spec: WorkflowSpec, step_id: str, step: StepSpec, tasks: dict[str, Any]) -> Any:
    from airflow.providers.standard.operators.python import PythonOperator

    common = _common_kwargs(spec, step_id, step)
    if isinstance(step.run, OperatorSpec):
        operator = resolve_class(step.run.operator, ("steps", step_id, "run", "operator"))
        if step.for_each is not None:
            raise ResolveError(
                Problem(
                    'for_each works with run: "module:function" steps; wrap the operator call '
                    "in a function to fan it out",
                    ("steps", step_id, "for_each"),
                    code="unsupported",
                )
            )
        return operator(task_id=step_id, **step.run.args, **common)
    function = resolve_callable(step.run, ("steps", step_id, "run"))
    if step.for_each is None:
        return PythonOperator(
            task_id=step_id, python_callable=function, op_kwargs=dict(step.args), **common
        )
    partial = PythonOperator.partial(
        task_id=step_id, python_callable=function, op_kwargs=dict(step.args), **common
    )
    if isinstance(step.for_each, ForEachFrom):
        source = tasks[step.for_each.from_step]
        return partial.expand(op_args=source.output.map(_single))
    return partial.expand(op_args=[[item] for item in step.for_each])


def _rollout(spec: WorkflowSpec, step_id: str, step: StepSpec) -> Any:
    """A ``waves:`` step: a rollout task group named for the step (see
    :func:`airflow_wfe.adapters.gates.waves.rollout`)."""
    from airflow_wfe.adapters.gates.waves import rollout

    waves = step.waves
    assert waves is not None
    assert isinstance(step.run, str)
    deploy = resolve_callable(step.run, ("steps", step_id, "run"))
    undo = None
    if isinstance(step.compensate, str):
        undo = resolve_callable(step.compensate, ("steps", step_id, "compensate"))
    common = _common_kwargs(spec, step_id, step)
    common.pop("doc_md", None)
    return rollout(
        deploy,
        targets=waves.targets,
        waves=waves.sizes,
        max_failed=waves.max_failed,
        undo=undo,
        group_id=step_id,
        op_kwargs=dict(step.args),
        **common,
    )


def _declare_compensation(task: Any, step_id: str, step: StepSpec) -> None:
    from airflow_wfe.adapters.saga.declare import compensate, irreversible, side_effects

    if step.side_effects:
        side_effects(task)

    if step.irreversible:
        irreversible(task)
    elif isinstance(step.compensate, OperatorSpec):
        where = ("steps", step_id, "compensate", "operator")
        compensate(task, resolve_class(step.compensate.operator, where), **step.compensate.args)
    elif step.compensate is not None:
        compensate(task, resolve_callable(step.compensate, ("steps", step_id, "compensate")))


def _wire(
    spec: WorkflowSpec,
    step_id: str,
    task: Any,
    budget: str | None,
    exits: dict[str, Any],
    folder: Path,
) -> None:
    """Put the step's gate in front of it and its quality gate after it, and make it wait for its
    needs (for each need, what that need's dependants wait for)."""
    step = spec.steps[step_id]
    entry = task
    if step.gate is not None:
        entry = gate_task(spec, step_id, step, budget)
        entry >> task
    exits[step_id] = task
    if step.canary is not None:
        exits[step_id] = canary_task(step_id, step)
        task >> exits[step_id]
    if step.quality is not None:
        check = quality_task(step_id, step, folder)
        exits[step_id] >> check
        exits[step_id] = check
    for need in step.needs:
        if need in exits:
            exits[need] >> entry
    if isinstance(step.for_each, ForEachFrom) and step.for_each.from_step not in step.needs:
        source = exits.get(step.for_each.from_step)
        if source is not None:
            source >> entry


def build_dag(loaded: LoadedSpec, *, dags_folder: Path | None = None) -> Any:
    """The Airflow DAG for a loaded spec.

    Raises:
        SpecError: the spec has validation errors or names code that cannot be imported; every
            problem is listed with its file and line.
    """
    from airflow.sdk import DAG

    spec = loaded.spec
    file = str(loaded.path)
    problems = [p for p in validate_spec(spec) if p.severity is Severity.ERROR]
    if problems:
        raise SpecError(file, [p.located(file, loaded.line_of(p.path)) for p in problems])

    description = spec.description or f"Workflow {spec.name} (YAML)"
    budget = budget_policy(spec)
    default_args: dict[str, Any] = {"owner": spec.owner, "retry_delay": timedelta(seconds=10)}
    if budget:
        # The scheduler's pre-flight sees only the serialized DAG: default_args carry the budget.
        default_args[DAG_BUDGET_ARG] = budget
    dag = DAG(
        dag_id=spec.name,
        description=description.splitlines()[0][:200],
        doc_md=(
            f"{spec.description}\n\nCompiled by airflow-wfe from `{loaded.path.name}`, "
            f"version {spec.version}, content hash `{loaded.content_hash[:12]}`."
        ),
        schedule=spec.schedule,
        start_date=datetime.combine(spec.start_date, datetime.min.time())
        if spec.start_date
        else None,
        catchup=spec.catchup,
        tags=sorted({*spec.tags, GOVERNED_TAG}),
        dagrun_timeout=spec.timeout,
        max_active_tasks=spec.max_active_tasks or 16,
        max_active_runs=spec.max_active_runs or 16,
        params=dict(spec.params),
        default_args=default_args,
        # Registered by the caller only once every step compiled: a half-built DAG must never be
        # picked up by Airflow's auto-registration.
        auto_register=False,
    )
    folders = [loaded.path.parent] + ([dags_folder] if dags_folder else [])
    tasks: dict[str, Any] = {}
    build_problems: list[Problem] = []
    budget_policies = []
    if budget:
        # The policy package (its pydantic models) loads only for a workflow with a budget.
        from airflow_wfe.core.policy.files import parse_policy

        budget_policies = [parse_policy(budget, file=f"{file} (budget)")]
    # What a step's dependants wait for: the step itself, or its quality gate when it has one.
    exits: dict[str, Any] = {}
    with dag, search_path(folders):
        for step_id in topological_order(spec):
            step = spec.steps[step_id]
            try:
                if step.waves is not None:
                    tasks[step_id] = _rollout(spec, step_id, step)
                    _wire(spec, step_id, tasks[step_id], budget, exits, loaded.path.parent)
                    continue
                tasks[step_id] = _make_task(spec, step_id, step, tasks)
                _declare_compensation(tasks[step_id], step_id, step)
            except ResolveError as exc:
                build_problems.append(exc.problem)
                continue
            task = tasks[step_id]
            # record_cost() enforces the workflow's per-run budget from here.
            task.wfe_budget_policies = budget_policies
            hook = cost_hook(step)
            if hook is not None:
                hook.existing = task._post_execute_hook
                task._post_execute_hook = hook
            _wire(spec, step_id, task, budget, exits, loaded.path.parent)
    if build_problems:
        raise SpecError(file, [p.located(file, loaded.line_of(p.path)) for p in build_problems])
    from airflow_wfe.adapters.saga.wiring import wire_saga

    wire_saga(dag)
    register_spec(
        SpecInfo(
            dag_id=spec.name,
            version=spec.version,
            content_hash=loaded.content_hash,
            path=str(loaded.path),
        )
    )
    return dag
