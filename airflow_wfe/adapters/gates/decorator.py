"""``@policy_gate``, ``@quality_gate`` and ``@canary_gate``: gates written as TaskFlow-style functions.

``@policy_gate``'s function returns extra facts; ``@quality_gate``'s the data to validate;
``@canary_gate``'s the samples to judge, at every check.

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

__all__ = ["canary_gate", "policy_gate", "quality_gate"]


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


def quality_gate(
    *,
    expectations: Sequence[Mapping[str, Any]] = (),
    suite: str | None = None,
    severity: str = "deny",
    task_id: str | None = None,
    **gate_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn a function that returns data into a
    :class:`~airflow_wfe.adapters.gates.quality.QualityGateOperator` factory.

    Example::

        @quality_gate(expectations=[{"expect_column_values_to_not_be_null": {"column": "id"}}])
        def orders(path: str) -> pandas.DataFrame:
            return pandas.read_csv(path)

        orders(download()) >> load

    The function runs inside the gate (its DataFrame never goes through XCom); its arguments may be
    other tasks' results.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def factory(*args: Any, **kwargs: Any) -> Any:
            from airflow_wfe.adapters.gates.quality import QualityGateOperator

            return QualityGateOperator(
                task_id=task_id or function.__name__,
                expectations=expectations,
                suite=suite,
                severity=severity,
                data_callable=function,
                op_args=args,
                op_kwargs=kwargs,
                **gate_kwargs,
            )

        return factory

    return decorate


def canary_gate(
    *,
    metrics: Sequence[Mapping[str, Any]],
    task_id: str | None = None,
    **gate_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn a function that returns samples (``{metric: {"canary": [...], "baseline": [...]}}``)
    into a :class:`~airflow_wfe.adapters.gates.canary.CanaryGateOperator` factory.

    Example::

        @canary_gate(metrics=[{"name": "error_rate", "limit": 0.05}], poke_interval=60)
        def release_health(release: str) -> dict:
            return {"error_rate": {"canary": rates(release), "baseline": rates("stable")}}

        release_health(deploy_canary()) >> promote

    The function is called at every check (a hold calls it again later); its arguments may be
    other tasks' results.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def factory(*args: Any, **kwargs: Any) -> Any:
            from airflow_wfe.adapters.gates.canary import CanaryGateOperator

            return CanaryGateOperator(
                task_id=task_id or function.__name__,
                metrics=metrics,
                samples=function,
                op_args=args,
                op_kwargs=kwargs,
                **gate_kwargs,
            )

        return factory

    return decorate
