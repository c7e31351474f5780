"""Airflow cluster policies of airflow-wfe (entry point ``airflow.policy``).

``dag_policy`` refuses governed DAGs that break ``[wfe] parse_time_checks`` (owner, retries,
timeouts, tags, compensation of side effects: see :mod:`airflow_wfe.adapters.parse_time_checks`) or a
parse-stage policy of ``[wfe] policy_path`` (:mod:`airflow_wfe.adapters.parse_time_policies`), then wires
the saga (compensation tasks) into governed DAGs that declare compensations; it runs wherever Airflow
parses a DAG file, so the scheduler, the UI and every worker see the same tasks.

``task_policy`` runs wherever Airflow parses a DAG file, including each task process right before the
task runs. For governed tasks it chains a pre-execute check: Airflow swallows listener exceptions, so
the pre-execute step is where ``[wfe] fail_closed`` can stop a task whose start the listener could
not record, and where a task of a run REJECTED at its pre-flight is refused (failed without retries,
naming the pre-flight's decision). The check is two dictionary lookups; it does no I/O.

The check shadows the operator's ``pre_execute`` method (the Task SDK runs an overridden one right
after the ``pre_execute=`` hook) rather than filling that hook: the hook is a serialized field, and
Airflow serializes a callable by looking up its source code, which cost every governed task ~1 ms at
each serialization and put our source into every serialized task.

A mapped task is a ``MappedOperator`` until the task process renders it: ``render_template_fields``
then builds a fresh operator from the partial arguments (``MappedOperator.unmap``), which knows
nothing of an attribute set on the mapped one, so a check installed there never ran. For mapped
tasks the policy shadows ``unmap`` instead (:class:`CheckedUnmap`), and every operator it builds
carries the check.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

from airflow_wfe.adapters.task_process import in_task_process

__all__ = ["CheckedUnmap", "FailClosedCheck", "dag_policy", "task_policy"]


class FailClosedCheck:
    """Pre-execute check: fail the task if its run was rejected at its pre-flight, or if its start
    was not recorded and fail_closed is on; then run the operator's own ``pre_execute`` (or what
    another policy put in its place)."""

    def __init__(self, chained: Any = None) -> None:
        self.chained = chained

    def __call__(self, context: Any) -> None:
        from airflow_wfe.adapters.listeners.listener import harness_failure_for
        from airflow_wfe.adapters.listeners.scope import rejected_at_preflight
        from airflow_wfe.config import get_settings
        from airflow_wfe.exceptions import HarnessError

        ti = context["ti"]
        rejected = rejected_at_preflight(ti.dag_id, ti.run_id)
        if rejected is not None:
            from airflow.sdk.exceptions import AirflowFailException

            # Not retryable: another try would meet the same decision.
            raise AirflowFailException(
                f"airflow-wfe refuses to run task {ti.task_id!r}: run {ti.run_id!r} of DAG "
                f"{ti.dag_id!r} was REJECTED at its pre-flight: {rejected}"
            )
        map_index = getattr(ti, "map_index", -1)
        failure = harness_failure_for(
            ti.dag_id,
            ti.run_id,
            ti.task_id,
            -1 if map_index is None else int(map_index),
            int(ti.try_number),
        )
        if failure is not None and get_settings().fail_closed:
            raise HarnessError(ti.dag_id, ti.run_id, ti.task_id, failure) from failure
        if self.chained is not None:
            self.chained(context)
        else:
            task = context["task"]
            type(task).pre_execute(task, context)


class CheckedUnmap:
    """``unmap`` of a governed mapped task: the operator Airflow builds at run time gets the
    :class:`FailClosedCheck` too (idempotent, and chained to another policy's ``unmap``)."""

    def __init__(self, mapped: Any, chained: Any = None) -> None:
        self.mapped = mapped
        self.chained = chained

    def __call__(self, resolve: Any) -> Any:
        if self.chained is not None:
            operator = self.chained(resolve)
        else:
            operator = type(self.mapped).unmap(self.mapped, resolve)
        _install_check(operator)
        return operator


def _install_check(task: Any) -> None:
    existing = vars(task).get("pre_execute")  # only an instance attribute, never the method
    if isinstance(existing, FailClosedCheck):
        return
    # object.__setattr__: BaseOperator.__setattr__ would record it as an init argument.
    object.__setattr__(task, "pre_execute", FailClosedCheck(existing))


@hookimpl
def dag_policy(dag: Any) -> None:
    """Refuse a governed DAG that breaks the parse-time checks; add the saga tasks to one whose
    steps declare compensations (idempotent)."""
    from airflow_wfe.adapters.listeners.listener import is_governed_tags

    if not is_governed_tags(getattr(dag, "tags", None)):
        return
    from airflow_wfe.config import get_settings

    settings = get_settings()
    checks = settings.parse_time_checks
    if checks:
        from airflow.exceptions import AirflowClusterPolicyViolation

        from airflow_wfe.adapters.parse_time_checks import check_dag

        problems = check_dag(dag, checks)
        if problems:
            raise AirflowClusterPolicyViolation(
                f"DAG {dag.dag_id!r} breaks airflow-wfe's parse-time checks "
                f"([wfe] parse_time_checks = {', '.join(checks)}): " + "; ".join(problems)
            )
    _check_parse_policies(dag, settings.policy_path)
    from airflow_wfe.adapters.saga.wiring import wire_saga

    wire_saga(dag)


#: Set by ``wfe policy test --dag`` (a dry run): refusals are collected here instead of raised, and
#: nothing is recorded.
DRY_RUN: dict[str, list[str]] | None = None


def _check_parse_policies(dag: Any, folder: Any) -> None:
    """Refuse ``dag`` when a parse-stage policy of ``[wfe] policy_path`` denies it."""
    if in_task_process():
        # A task re-parses its file at every start: the DAG processor's verdict holds. Asked
        # before importing the policy machinery, which a task process then never loads.
        return
    from airflow.exceptions import AirflowClusterPolicyViolation

    from airflow_wfe.adapters.parse_time_policies import check_parse_policies, parse_policies
    from airflow_wfe.exceptions import WfeError

    try:
        policies = parse_policies(folder)
    except WfeError as exc:
        problems = [f"parse-stage policies cannot be loaded, failing closed: {exc}"]
    else:
        if not policies:
            return
        problems, _decision = check_parse_policies(dag, policies, record=DRY_RUN is None)
    if DRY_RUN is not None:
        DRY_RUN[dag.dag_id] = problems
        return
    if problems:
        raise AirflowClusterPolicyViolation(
            f"DAG {dag.dag_id!r} breaks airflow-wfe's parse-time policies: " + "; ".join(problems)
        )


@hookimpl
def task_policy(task: Any) -> None:
    """Chain :class:`FailClosedCheck` into governed tasks, and into the operators a governed
    mapped task builds at run time (idempotent across re-parses)."""
    from airflow_wfe.adapters.listeners.listener import is_governed_tags

    dag = getattr(task, "dag", None)
    if dag is None or not is_governed_tags(getattr(dag, "tags", None)):
        return
    if getattr(task, "is_mapped", False) and callable(getattr(task, "unmap", None)):
        unmap = vars(task).get("unmap")
        if not isinstance(unmap, CheckedUnmap):
            object.__setattr__(task, "unmap", CheckedUnmap(task, unmap))
        return
    _install_check(task)
