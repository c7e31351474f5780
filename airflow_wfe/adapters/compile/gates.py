"""What a workflow's ``budget:``, a step's ``gate:`` and a step's ``cost:`` compile to.

* ``budget:`` becomes an inline policy (``<workflow>-budget``) of budget rules, evaluated by every gate
  of the workflow and enforced when a step records a cost;
* ``gate:`` becomes a :class:`~airflow_wfe.adapters.gates.PolicyGateOperator` task ``gate__<step>`` between the
  step and what it needs: it evaluates the workflow's and the gate's policies, the budget with the
  step's reserved cost, and (``approval: true``) asks a person;
* ``canary:`` becomes a :class:`~airflow_wfe.adapters.gates.canary.CanaryGateOperator` task
  ``canary__<step>`` after the step (which deployed the canary); the step's dependants wait for it,
  and a rollback fails the run so the step's ``compensate`` undoes the canary;
* ``quality:`` becomes a :class:`~airflow_wfe.adapters.gates.quality.QualityGateOperator` task
  ``quality__<step>`` after the step, checking its result; the step's dependants wait for it;
* ``cost:`` becomes a post-execute hook that writes ``fixed + per_second x duration`` to the ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from airflow_wfe.core.spec.models import StepSpec, WorkflowSpec

__all__ = [
    "CANARY_PREFIX",
    "GATE_PREFIX",
    "QUALITY_PREFIX",
    "budget_policy",
    "canary_task",
    "cost_hook",
    "gate_task",
    "quality_task",
]

GATE_PREFIX: Final = "gate__"
QUALITY_PREFIX: Final = "quality__"
CANARY_PREFIX: Final = "canary__"


def budget_policy(spec: WorkflowSpec) -> str | None:
    """The workflow's ``budget:`` as an inline policy document, or ``None``."""
    budget = spec.budget
    if budget is None:
        return None
    rules = [
        {"id": f"per-{name}", "kind": "budget", "scope": scope, "limit": limit,
         "currency": budget.currency}
        for name, scope, limit in (
            ("run", "run", budget.per_run),
            ("day", "dag_day", budget.per_day),
            ("month", "dag_month", budget.per_month),
        )
        if limit is not None
    ]  # fmt: skip
    if not rules:
        return None
    document = {
        "name": f"{spec.name}-budget",
        "version": spec.version,
        "applies_to": {"dags": [spec.name]},
        "rules": rules,
    }
    return yaml.safe_dump(document, sort_keys=False)


def _approval_policy(spec: WorkflowSpec, step_id: str, step: StepSpec) -> str:
    gate = step.gate
    assert gate is not None
    rule: dict[str, Any] = {
        "id": "approval",
        "kind": "approval",
        "on_timeout": gate.on_timeout.value,
        "reason": f"step {step_id} of {spec.name} needs a person's approval",
    }
    if gate.timeout is not None:
        rule["timeout"] = f"{int(gate.timeout.total_seconds())}s"
    document = {"name": f"{spec.name}-{step_id}-approval", "rules": [rule]}
    return yaml.safe_dump(document, sort_keys=False)


def gate_task(spec: WorkflowSpec, step_id: str, step: StepSpec, budget: str | None) -> Any:
    """The gate task in front of ``step_id``."""
    from airflow_wfe.adapters.gates.operator import PolicyGateOperator

    gate = step.gate
    assert gate is not None
    inline = [text for text in (budget,) if text]
    if gate.approval:
        inline.append(_approval_policy(spec, step_id, step))
    cost = step.cost
    reserve = 0.0
    if cost is not None:
        reserve = cost.reserve if cost.reserve is not None else (cost.fixed or 0.0)
    return PolicyGateOperator(
        task_id=f"{GATE_PREFIX}{step_id}",
        policies=(*spec.policies, *gate.policies),
        inline_policies=inline,
        step={"id": step_id, "description": step.description or ""},
        reserve=reserve,
        subject=f"{spec.name}: run {step_id}?",
    )


def canary_task(step_id: str, step: StepSpec) -> Any:
    """The canary gate after ``step_id``."""
    from airflow_wfe.adapters.compile.resolve import resolve_callable
    from airflow_wfe.adapters.gates.canary import CanaryGateOperator

    canary = step.canary
    assert canary is not None
    samples = None
    if canary.samples is not None:
        samples = resolve_callable(canary.samples, ("steps", step_id, "canary", "samples"))
    return CanaryGateOperator(
        task_id=f"{CANARY_PREFIX}{step_id}",
        metrics=[m.model_dump(exclude_none=True) for m in canary.metrics],
        samples=samples,
        prometheus_conn_id=canary.prometheus_conn_id,
        conn_id=canary.conn_id,
        window=canary.window,
        poke_interval=canary.check_every.total_seconds(),
        timeout=canary.max_wait.total_seconds(),
        on_timeout=canary.on_timeout,
    )


def quality_task(step_id: str, step: StepSpec, folder: Path) -> Any:
    """The quality gate after ``step_id``, checking its result (a suite path is relative to the
    workflow file's folder)."""
    from airflow_wfe.adapters.gates.quality import QualityGateOperator

    quality = step.quality
    assert quality is not None
    suite = None if quality.suite is None else str((folder / quality.suite).resolve())
    return QualityGateOperator(
        task_id=f"{QUALITY_PREFIX}{step_id}",
        data_from=step_id,
        expectations=quality.expectations,
        suite=suite,
        severity=quality.severity,
    )


class CostHook:
    """Post-execute hook: writes the step's declared cost (fixed plus rate x duration)."""

    def __init__(self, fixed: float, per_second: float, existing: Any = None) -> None:
        self.fixed = fixed
        self.per_second = per_second
        self.existing = existing

    def __call__(self, context: Any, result: Any = None) -> None:
        if self.existing is not None:
            self.existing(context, result)
        from airflow_wfe.adapters.task.cost import record_cost

        started = getattr(context["ti"], "start_date", None)
        seconds = (datetime.now(UTC) - started).total_seconds() if started else 0.0
        amount = self.fixed + self.per_second * max(seconds, 0.0)
        detail = f"declared cost: fixed {self.fixed} + {self.per_second}/s x {seconds:.1f}s"
        record_cost(amount, detail=detail)


def cost_hook(step: StepSpec) -> CostHook | None:
    """The hook that records ``step``'s declared cost, or ``None`` without ``cost:``."""
    cost = step.cost
    if cost is None or (cost.fixed is None and cost.per_second is None):
        return None
    return CostHook(cost.fixed or 0.0, cost.per_second or 0.0)
