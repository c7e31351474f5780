"""The one exception tree of airflow-wfe.

Every error the package raises on purpose derives from :class:`WfeError`, so a caller (the CLI, the
REST layer, an operator) can translate all of them at one boundary. Each class keeps its context as
attributes, so the boundary can build a structured answer without parsing messages::

    WfeError
    ├── ArtifactError                an artifact request cannot be honoured (bad name, no rollback)
    │   └── ArtifactNotFoundError    no such artifact, version, or no active version yet
    ├── AuditError                   an audit request cannot be honoured (archive file, window)
    ├── ConfigError                  a [wfe] option has a value we cannot use
    ├── HarnessError                 fail_closed: the harness could not record a governed task
    ├── PolicyError                  a policy cannot be loaded or evaluated (gates fail closed)
    │   └── BudgetExceededError      a run spent more than a per-run budget allows
    ├── SpecError                    a workflow file is invalid (every problem, with file and line)
    ├── StateError
    │   ├── IllegalTransitionError   the state machine refuses a transition
    │   └── RunNotFoundError         no run (or step) with that key in the store
    └── StoreError
        ├── StoreUnavailableError    the store cannot be opened (missing, locked, refused)
        ├── SchemaOutdatedError      the store's schema is behind this version of the package
        └── ConcurrentUpdateError    optimistic locking kept losing against other writers
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "AuditError",
    "BudgetExceededError",
    "ConcurrentUpdateError",
    "ConfigError",
    "HarnessError",
    "IllegalTransitionError",
    "PolicyError",
    "RunNotFoundError",
    "SchemaOutdatedError",
    "SpecError",
    "StateError",
    "StoreError",
    "StoreUnavailableError",
    "WfeError",
]


class WfeError(Exception):
    """Root of every error airflow-wfe raises on purpose."""


class ArtifactError(WfeError):
    """An artifact request cannot be honoured: a bad name or media type, nothing to roll back to.

    Attributes:
        name: the artifact name.
        problem: what is wrong, and what is allowed.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"artifact {name!r}: {problem}")


class ArtifactNotFoundError(ArtifactError):
    """No artifact by that name, no such version of it, or no active version yet.

    Attributes:
        name: the artifact name asked for.
        version: the version asked for (``None`` when the active version was asked for).
    """

    def __init__(
        self, name: str, version: str | None = None, *, problem: str | None = None
    ) -> None:
        self.version = version
        default = (
            "no such artifact in the state store" if version is None else f"no version {version!r}"
        )
        super().__init__(name, problem or default)


class ConfigError(WfeError):
    """A ``[wfe]`` option holds a value the package cannot use.

    Attributes:
        option: the option name, e.g. ``store_conn``.
        value: the offending value (already masked when it may carry a secret).
    """

    def __init__(self, option: str, value: str, problem: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"[wfe] {option} = {value!r}: {problem}")


class HarnessError(WfeError):
    """Raised in a governed task, before it executes, when ``[wfe] fail_closed`` is on and the harness
    could not record the task's start (store unreachable, illegal transition, ...).

    Attributes:
        dag_id, run_id, task_id: the task instance that was stopped.
    """

    def __init__(self, dag_id: str, run_id: str, task_id: str, cause: BaseException) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        super().__init__(
            f"task {dag_id}/{run_id}/{task_id} stopped before execution because [wfe] fail_closed "
            f"is on and its start could not be recorded: {type(cause).__name__}: {cause}"
        )


class SpecError(WfeError):
    """A workflow file (or spec) cannot be used; carries every problem found, not just the first.

    Attributes:
        file: the workflow file (``None`` for a spec built in memory).
        problems: the :class:`~airflow_wfe.core.spec.problems.Problem` list, errors first.
    """

    def __init__(self, file: str | None, problems: Sequence[Any]) -> None:
        self.file = file
        self.problems = tuple(problems)
        lines = "\n".join(str(problem) for problem in self.problems)
        count = len(self.problems)
        super().__init__(
            f"{file or 'workflow spec'}: {count} problem{'s' if count != 1 else ''}\n{lines}"
        )


class StateError(WfeError):
    """Base for errors about run and step states."""


class IllegalTransitionError(StateError):
    """The state machine refuses to move an entity from one state to another.

    Raised before anything is written, so a refused transition never reaches the store as a state
    change; the caller decides whether to log, count or surface it.

    Attributes:
        entity: ``"run"`` or ``"step"``.
        key: a readable key of the entity, e.g. ``deploy/manual__2026-11-25`` or ``deploy/.../canary``.
        from_state: the current state (``None`` when the entity does not exist yet).
        to_state: the requested state.
        allowed: the states reachable from ``from_state``.
    """

    def __init__(
        self,
        entity: str,
        key: str,
        from_state: str | None,
        to_state: str,
        allowed: Iterable[str],
    ) -> None:
        self.entity = entity
        self.key = key
        self.from_state = from_state
        self.to_state = to_state
        self.allowed = tuple(sorted(allowed))
        shown_from = from_state if from_state is not None else "(new)"
        allowed_text = ", ".join(self.allowed) if self.allowed else "none (terminal state)"
        super().__init__(
            f"{entity} {key!r} cannot go {shown_from} → {to_state}; allowed: {allowed_text}"
        )


class RunNotFoundError(StateError):
    """No run with that DAG id and run id is in the store.

    Attributes:
        dag_id: the DAG id asked for.
        run_id: the run id asked for.
    """

    def __init__(self, dag_id: str, run_id: str) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        super().__init__(f"no governed run {dag_id}/{run_id} in the state store")


class StoreError(WfeError):
    """Base for errors of the state store."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or opened (missing directory, locked file, refused connection).

    Attributes:
        url: the store URL with its password masked.
    """

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"state store {url} is unavailable: {problem}")


class SchemaOutdatedError(StoreError):
    """The store's schema revision is not the one this package needs.

    Attributes:
        url: the store URL with its password masked.
        found: the revision found (``None`` for an empty database).
        expected: the revision this package was built for.
    """

    def __init__(self, url: str, found: str | None, expected: str) -> None:
        self.url = url
        self.found = found
        self.expected = expected
        super().__init__(
            f"state store {url} is at schema revision {found or '(none)'}, this package needs "
            f"{expected}; run `wfe db upgrade`"
        )


class ConcurrentUpdateError(StoreError):
    """An optimistic update lost against other writers more times than the retry budget allows.

    Attributes:
        key: a readable key of the contended entity.
        attempts: how many times the update was tried.
    """

    def __init__(self, key: str, attempts: int) -> None:
        self.key = key
        self.attempts = attempts
        super().__init__(f"{key}: gave up after {attempts} concurrent-update conflicts")


class AuditError(WfeError):
    """An audit request cannot be honoured: an unreadable or altered archive file, a bad window.

    A broken chain is not an exception: verification reports it as findings (exit 1 in the CLI).

    Attributes:
        subject: what the request was about (a file, an option).
        problem: what is wrong.
    """

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject}: {problem}")


class PolicyError(WfeError):
    """A policy cannot be evaluated: a CEL expression fails on the facts, a fact is missing, the
    policy folder cannot be read. Gates fail closed on it: never an "allow" by accident.

    Attributes:
        where: the policy and rule (or file) concerned.
        problem: what went wrong.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


class BudgetExceededError(PolicyError):
    """A run spent more than a per-run budget allows; the step that pushed it over fails.

    Attributes:
        spent: what the run has spent, this step included.
        limit: the budget.
        currency: of both.
    """

    def __init__(self, where: str, spent: float, limit: float, currency: str) -> None:
        self.spent = spent
        self.limit = limit
        self.currency = currency
        super().__init__(
            where, f"the run spent {spent:.2f} {currency}, over its budget of {limit:.2f}"
        )
