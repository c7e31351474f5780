"""``@policy_gate``: a gate written as a TaskFlow-style function that returns extra facts.

Example::

    from airflow_wfe.adapters.gates import policy_gate

    @policy_gate(policies=["canary"], step={"risk": "high"})
    def canary_ok(error_rate: float) -> dict:
        return {"metrics": {"error_rate": error_rate}}

    canary_ok(measure()) >> promote

The function runs when the gate runs (its arguments may be other tasks' results); the dict it returns
is merged into the facts the policies see.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["policy_gate"]


def policy_gate(
    *,
    policies: Sequence[str] = (),
    task_id: str | None = None,
    **gate_kwargs: Any,
) -> Callable[[Callable[..., Mapping[str, Any] | None]], Callable[..., Any]]:
    """Turn a facts function into a :class:`~airflow_wfe.adapters.gates.PolicyGateOperator` factory."""

    def decorate(function: Callable[..., Mapping[str, Any] | None]) -> Callable[..., Any]:
        @functools.wraps(function)
        def factory(*args: Any, **kwargs: Any) -> Any:
            from airflow_wfe.adapters.gates.operator import PolicyGateOperator

            return PolicyGateOperator(
                task_id=task_id or function.__name__,
                policies=policies,
                facts_callable=function,
                op_args=args,
                op_kwargs=kwargs,
                **gate_kwargs,
            )

        return factory

    return decorate
