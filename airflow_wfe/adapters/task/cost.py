"""The cost ledger from task code: ``record_cost(12.5)`` inside a governed task.

Costs are what budgets count: explicit amounts (``tokens * price``), or a step's duration times a
rate. Recording is also where overspending is caught: when the run's spending passes a per-run budget
of a policy that applies to the DAG, :class:`~airflow_wfe.exceptions.BudgetExceededError` fails the
step (no retry can fix it), so the run stops and its saga compensates what was done.

Example::

    from airflow_wfe.adapters.task.cost import record_cost

    @task
    def generate(prompt: str) -> str:
        text, tokens = call_model(prompt)
        record_cost(tokens * 0.000002, detail=f"{tokens} tokens")
        return text
"""

from __future__ import annotations

from typing import Any

__all__ = ["record_cost"]


def record_cost(
    amount: float, *, currency: str = "USD", detail: str | None = None, enforce: bool = True
) -> dict[str, Any]:
    """Write what the running task spent to the ledger; returns the run's spending so far.

    Raises:
        AirflowFailException: ``enforce`` and the run is now over a per-run budget (from
            :class:`~airflow_wfe.exceptions.BudgetExceededError`; retries are skipped).
        RunNotFoundError: the task's run is not governed.
    """
    from airflow.sdk import get_current_context

    from airflow_wfe.adapters.task.business_metrics import mask_text
    from airflow_wfe.engine.harness import get_runtime_store

    context = get_current_context()
    ti = context["ti"]
    dag = getattr(context.get("task"), "dag", None)
    tags = sorted(getattr(dag, "tags", None) or ())
    store = get_runtime_store()
    store.record_cost(
        ti.dag_id,
        ti.run_id,
        ti.task_id,
        amount,
        currency=currency,
        # Free text a DAG author writes: through Airflow's secrets masker before it is stored.
        detail=mask_text(detail),
        tags=tags,
    )
    totals = store.spent(ti.dag_id, ti.run_id, tags=tags)
    _report(ti.dag_id, totals["dag_month"], context)
    if enforce:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_wfe.exceptions import BudgetExceededError

        try:
            _enforce_run_budgets(ti.dag_id, tags, totals["run"], context)
        except BudgetExceededError as exc:
            # No retry can make an overspent run cheaper: fail the step for good.
            raise AirflowFailException(str(exc)) from exc
    return totals


def _policies(context: Any) -> list[Any]:
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.policy import load_policy_folder

    inline = getattr(context.get("task"), "wfe_budget_policies", ())
    return [*load_policy_folder(get_settings().policy_path), *inline]


def _report(dag_id: str, month_spent: float, context: Any) -> None:
    """``wfe.cost.spent.<dag>`` (this month) and ``wfe.cost.budget.<dag>`` (its monthly budget)."""
    from airflow_wfe.core.metrics import names
    from airflow_wfe.core.policy.models import BudgetRule, BudgetScope
    from airflow_wfe.engine.emitter import get_emitter

    emitter = get_emitter()
    emitter.gauge(names.cost_spent(dag_id), month_spent)
    limits = [
        rule.limit
        for loaded in _policies(context)
        if loaded.applies(dag_id, ())
        for rule in loaded.policy.rules
        if isinstance(rule, BudgetRule) and rule.scope is BudgetScope.DAG_MONTH
    ]
    if limits:
        emitter.gauge(names.cost_budget(dag_id), min(limits))


def _enforce_run_budgets(dag_id: str, tags: list[str], run_spent: float, context: Any) -> None:
    from airflow_wfe.core.policy.models import BudgetRule, BudgetScope
    from airflow_wfe.exceptions import BudgetExceededError

    for loaded in _policies(context):
        if not loaded.applies(dag_id, tags):
            continue
        budgets = [
            rule
            for rule in loaded.policy.rules
            if isinstance(rule, BudgetRule) and rule.scope is BudgetScope.RUN
        ]
        for rule in budgets:
            if run_spent > rule.limit:
                raise BudgetExceededError(
                    f"policy {loaded.policy.name!r} rule {rule.id!r}",
                    run_spent,
                    rule.limit,
                    rule.currency,
                )
