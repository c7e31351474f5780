"""Declaring how a step is undone: ``compensate(task, by=...)`` and the ``@step(compensate=...)`` decorator.

A declaration is only data attached to the Airflow task (attribute :data:`ATTRIBUTE`); the saga
tasks that act on it are added to the DAG by :func:`airflow_wfe.adapters.saga.wiring.wire_saga`, which the
cluster policy runs for every governed DAG (and the YAML compiler for every workflow). Keeping the
bookkeeping apart from the step's own logic means a step stays an ordinary Airflow task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

__all__ = [
    "ATTRIBUTE",
    "SIDE_EFFECTS",
    "Compensation",
    "compensate",
    "declared_compensation",
    "has_side_effects",
    "irreversible",
    "side_effects",
]

#: Attribute of an Airflow task that holds its :class:`Compensation`.
ATTRIBUTE: Final = "wfe_compensation"


@dataclass(frozen=True)
class Compensation:
    """How one step is undone when its run fails.

    Exactly one of ``function`` / ``operator`` is set, unless the step is ``irreversible``.

    Attributes:
        function: called with the step's result (``result``), a stable ``idempotency_key`` and any
            Airflow context value it names, like a PythonOperator callable.
        operator: an operator class, instantiated with ``operator_kwargs`` as the compensation task;
            its templates can read the step's result with ``ti.xcom_pull(task_ids=<step>)``.
        irreversible: the step cannot be undone; a failed run in which it succeeded ends
            COMPENSATION_FAILED.
        retries, retry_delay, timeout: for the compensation task (default: the step's own).
    """

    function: Callable[..., Any] | None = None
    operator: type[Any] | None = None
    operator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    irreversible: bool = False
    retries: int | None = None
    retry_delay: timedelta | None = None
    timeout: timedelta | None = None

    def __post_init__(self) -> None:
        given = (self.function is not None) + (self.operator is not None)
        if self.irreversible and given:
            raise ValueError("an irreversible step cannot also declare a compensation")
        if not self.irreversible and given != 1:
            raise ValueError("give exactly one compensation: a callable or an operator class")


def _operator_of(task: Any) -> Any:
    """The Airflow operator behind a task, an XComArg (TaskFlow call) or a mapped task."""
    return getattr(task, "operator", task)


def _unwrap(function: Any) -> Callable[..., Any]:
    # A @task-decorated function passed as compensation: use the plain function it wraps.
    inner = getattr(function, "function", None)
    return inner if callable(inner) else function  # type: ignore[no-any-return]


def compensate(
    task: Any,
    by: Callable[..., Any] | type[Any],
    *,
    retries: int | None = None,
    retry_delay: timedelta | None = None,
    timeout: timedelta | None = None,
    **operator_kwargs: Any,
) -> Any:
    """Declare how ``task`` is undone when its governed run fails; returns ``task``.

    Args:
        task: an operator, a mapped operator or the result of calling a ``@task`` function.
        by: a function ``(result, idempotency_key, **context) -> Any``, or an operator class that
            is instantiated with ``operator_kwargs``.
        retries, retry_delay, timeout: for the compensation task (default: the step's own).

    Example:
        ::

            booking = book_hotel(trip)
            compensate(booking, cancel_hotel)          # cancel_hotel(result, idempotency_key)
            compensate(send_mail, BashOperator, bash_command="echo recall")
    """
    operator = _operator_of(task)
    if isinstance(by, type):
        declaration = Compensation(
            operator=by,
            operator_kwargs=dict(operator_kwargs),
            retries=retries,
            retry_delay=retry_delay,
            timeout=timeout,
        )
    else:
        if operator_kwargs:
            raise TypeError(
                f"compensate(): {sorted(operator_kwargs)} only apply to an operator class"
            )
        declaration = Compensation(
            function=_unwrap(by), retries=retries, retry_delay=retry_delay, timeout=timeout
        )
    setattr(operator, ATTRIBUTE, declaration)
    return task


def irreversible(task: Any) -> Any:
    """Declare that ``task`` cannot be undone; returns ``task``.

    A governed run that fails after this step succeeded still compensates every other step, then
    ends COMPENSATION_FAILED naming it, so a person decides what to do.
    """
    setattr(_operator_of(task), ATTRIBUTE, Compensation(irreversible=True))
    return task


#: Marks a task whose effects outlive the run (a payment, a deployment, an e-mail).
SIDE_EFFECTS: Final = "wfe_side_effects"


def side_effects(task: Any) -> Any:
    """Declare that ``task`` changes the world; returns ``task``.

    With ``[wfe] parse_time_checks`` including ``compensation``, a governed DAG is refused at parse
    time when such a task declares neither :func:`compensate` nor :func:`irreversible`.
    """
    setattr(_operator_of(task), SIDE_EFFECTS, True)
    return task


def has_side_effects(task: Any) -> bool:
    """Whether ``task`` was declared with :func:`side_effects` (or ``side_effects: true`` in YAML)."""
    return bool(getattr(_operator_of(task), SIDE_EFFECTS, False))


def declared_compensation(task: Any) -> Compensation | None:
    """The compensation declared for ``task``, if any."""
    value = getattr(_operator_of(task), ATTRIBUTE, None)
    return value if isinstance(value, Compensation) else None
