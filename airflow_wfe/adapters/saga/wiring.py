"""Adding the saga to a governed DAG: ``saga__begin``, one ``compensate__<step>`` per compensable
step, and ``saga__end``, as real Airflow tasks visible in the grid.

Shape: every forward task → ``saga__begin`` (so compensation starts only after every in-flight step
of the run has finished) → compensations, each after the compensations of the steps downstream of
its own (reverse dependency order; independent branches compensate in parallel) → ``saga__end``. All
saga tasks are teardown tasks: Airflow keeps judging the run by its forward tasks, and compensation
tasks keep their own retries and timeouts. Wiring is idempotent, because the cluster policy runs it
at every parse of the DAG file.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from airflow_wfe.adapters.saga.declare import Compensation, declared_compensation
from airflow_wfe.adapters.saga.tasks import (
    SAGA_BEGIN,
    SAGA_END,
    after_operator,
    before_operator,
    begin,
    compensate_step,
    compensation_task_id,
    end,
    is_saga_task,
)

__all__ = ["wire_saga"]

#: Retries of the bookkeeping tasks (begin/end): they only talk to the state store.
_BOOKKEEPING_RETRIES = 3


def _compensate_with_context(step_id: str, compensation: Compensation, **context: Any) -> Any:
    return compensate_step(step_id, compensation, context)


def _task_settings(step: Any, compensation: Compensation) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "retries": step.retries if compensation.retries is None else compensation.retries,
        "retry_delay": compensation.retry_delay or step.retry_delay,
    }
    timeout = compensation.timeout or step.execution_timeout
    if timeout is not None:
        settings["execution_timeout"] = timeout
    return settings


def _compensation_task(dag: Any, step: Any, compensation: Compensation) -> Any:
    from airflow.providers.standard.operators.python import PythonOperator

    task_id = compensation_task_id(step.task_id)
    settings = _task_settings(step, compensation)
    if compensation.function is not None:
        return PythonOperator(
            task_id=task_id,
            dag=dag,
            python_callable=functools.partial(_compensate_with_context, step.task_id, compensation),
            doc_md=f"Undoes `{step.task_id}` when the run fails (airflow-wfe saga).",
            **settings,
        )
    assert compensation.operator is not None
    return compensation.operator(
        task_id=task_id,
        dag=dag,
        pre_execute=before_operator(step.task_id),
        post_execute=after_operator(step.task_id),
        **{**settings, **dict(compensation.operator_kwargs)},
    )


def wire_saga(dag: Any) -> bool:
    """Add the saga tasks to ``dag`` when a step declares a compensation or is irreversible.

    Returns:
        True when tasks were added, False when there was nothing to do (or already wired).
    """
    if SAGA_BEGIN in dag.task_dict:
        return False
    forward = [task for task in dag.tasks if not is_saga_task(task.task_id)]
    declared = {task.task_id: d for task in forward if (d := declared_compensation(task))}
    if not declared:
        return False
    from airflow.providers.standard.operators.python import PythonOperator

    compensable = [step_id for step_id, d in declared.items() if not d.irreversible]
    irreversible = [step_id for step_id, d in declared.items() if d.irreversible]
    start = PythonOperator(
        task_id=SAGA_BEGIN,
        dag=dag,
        python_callable=begin,
        op_kwargs={"compensable": compensable, "irreversible": irreversible},
        retries=_BOOKKEEPING_RETRIES,
        retry_delay=timedelta(seconds=5),
        doc_md="Starts compensation when a step of the run failed (airflow-wfe saga).",
    ).as_teardown()
    for task in forward:
        task >> start
    compensations = {
        step_id: _compensation_task(dag, dag.task_dict[step_id], declared[step_id])
        for step_id in compensable
    }
    finish = PythonOperator(
        task_id=SAGA_END,
        dag=dag,
        python_callable=end,
        retries=_BOOKKEEPING_RETRIES,
        retry_delay=timedelta(seconds=5),
        doc_md="Concludes compensation: COMPENSATED or COMPENSATION_FAILED (airflow-wfe saga).",
    ).as_teardown()
    start >> finish
    for step_id, task in compensations.items():
        task.as_teardown()
        start >> task
        task >> finish
        for later in dag.task_dict[step_id].get_flat_relative_ids(upstream=False):
            if later in compensations:
                compensations[later] >> task
    return True
