"""The one exception tree of airflow-wfe.

Every error the package raises on purpose derives from :class:`WfeError`, so a caller (the CLI, the
REST layer, an operator) can translate all of them at one boundary. Each class keeps its context as
attributes, so the boundary can build a structured answer without parsing messages, and carries two
class attributes that never change between releases: ``code`` (a short snake_case name a client can
switch on) and ``http_status`` (what the REST layer answers with). The CLI exits 2 on a
:class:`UsageError` and 1 on any other ``WfeError``::

    class                            code                http  raised when
    WfeError                         wfe_error           500   (root; a bare one is an internal error)
    ├── UsageError                   usage_error         400   a command line or request is malformed
    ├── ArtifactError                artifact_error      422   an artifact name or media type is invalid
    │   ├── ArtifactNotFoundError    artifact_not_found  404   no such artifact or version, none active
    │   └── ArtifactConflictError    artifact_conflict   409   nothing to roll back to, hash collision
    ├── AuditError                   audit_error         422   an archive file or window is unusable
    ├── ConfigError                  config_error        500   a [wfe] option has a value we cannot use
    ├── CurrencyMismatchError        currency_mismatch   409   a cost in another currency than the run's
    ├── DagNotFoundError             dag_not_found       404   no DAG by that id in Airflow's database
    ├── HarnessError                 harness_error       500   fail_closed: a governed task not recorded
    ├── MissingExtraError            missing_extra       500   an optional dependency is not installed
    ├── PolicyError                  policy_error        422   a policy cannot be loaded or evaluated
    │   └── BudgetExceededError      budget_exceeded     422   a run spent more than its budget allows
    ├── SpecError                    invalid_spec        422   a workflow file is invalid (every problem)
    ├── SpoolError                   spool_error         500   the local spool cannot be read or written
    │   └── SpoolFullError           spool_full          503   the local spool reached [wfe] spool_max_mb
    ├── StateError                   state_error         409   (base of the run and step state errors)
    │   ├── IllegalTransitionError   illegal_transition  409   the state machine refuses a transition
    │   └── RunNotFoundError         run_not_found       404   no run (or step) with that key
    └── StoreError                   store_error         500   (base of the state store's errors)
        ├── StoreUnavailableError    store_unavailable   503   the store cannot be opened or reached
        ├── SchemaOutdatedError      schema_outdated     503   the store's schema is behind the package
        └── ConcurrentUpdateError    concurrent_update   409   optimistic locking kept losing

A code names one class and is never reused (a test pins that); a new class gets a new code, and a
subclass without a more precise meaning may keep its parent's status but not its code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

__all__ = [
    "ArtifactConflictError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "AuditError",
    "BudgetExceededError",
    "ConcurrentUpdateError",
    "ConfigError",
    "CurrencyMismatchError",
    "DagNotFoundError",
    "HarnessError",
    "IllegalTransitionError",
    "MissingExtraError",
    "PolicyError",
    "RunNotFoundError",
    "SchemaOutdatedError",
    "SpecError",
    "SpoolError",
    "SpoolFullError",
    "StateError",
    "StoreError",
    "StoreUnavailableError",
    "UsageError",
    "WfeError",
]


class WfeError(Exception):
    """Root of every error airflow-wfe raises on purpose.

    Raised bare only where no subclass fits; a face reports it as an internal error (HTTP 500).
    """

    #: Stable machine-readable name of the error (unique per class; part of the REST contract).
    code: ClassVar[str] = "wfe_error"
    #: The HTTP status the REST layer answers with.
    http_status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR


class UsageError(WfeError):
    """A command line or API request is malformed: a bad flag value, an unparsable argument.

    The CLI exits 2 on it (argparse's own usage errors exit 2 as well), the REST layer answers 400.

    Attributes:
        problem: what is wrong, and what is allowed.
        argument: the flag or parameter concerned (``None`` when the whole request is wrong).
    """

    code = "usage_error"
    http_status = HTTPStatus.BAD_REQUEST

    def __init__(self, problem: str, *, argument: str | None = None) -> None:
        self.problem = problem
        self.argument = argument
        super().__init__(f"{argument}: {problem}" if argument else problem)


class ArtifactError(WfeError):
    """An artifact request cannot be honoured: a bad name or media type, nothing to roll back to.

    Attributes:
        name: the artifact name.
        problem: what is wrong, and what is allowed.
    """

    code = "artifact_error"
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY

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

    code = "artifact_not_found"
    http_status = HTTPStatus.NOT_FOUND

    def __init__(
        self, name: str, version: str | None = None, *, problem: str | None = None
    ) -> None:
        self.version = version
        default = (
            "no such artifact in the state store" if version is None else f"no version {version!r}"
        )
        super().__init__(name, problem or default)


class ArtifactConflictError(ArtifactError):
    """An artifact request conflicts with what the store holds: nothing to roll back to, or a
    version id already taken by other content.

    Attributes:
        name: the artifact name.
        problem: what conflicts, and what to do instead.
    """

    code = "artifact_conflict"
    http_status = HTTPStatus.CONFLICT


class CurrencyMismatchError(WfeError):
    """A cost in one currency for a run that already spent in another: amounts are never converted,
    so a sum across currencies (and a budget judged on it) would mean nothing.

    Attributes:
        where: the run (``dag_id/run_id``) or budget concerned.
        currency: the currency refused.
        held: the currency (or currencies) already there.
    """

    code = "currency_mismatch"
    http_status = HTTPStatus.CONFLICT

    def __init__(self, where: str, currency: str, held: Sequence[str]) -> None:
        self.where = where
        self.currency = currency
        self.held = tuple(held)
        super().__init__(
            f"{where}: a cost in {currency} cannot join amounts in {', '.join(self.held)}; "
            "amounts are never converted: record every cost of a run in one currency"
        )


class ConfigError(WfeError):
    """A ``[wfe]`` option holds a value the package cannot use.

    Attributes:
        option: the option name, e.g. ``store_conn``.
        value: the offending value (already masked when it may carry a secret).
    """

    code = "config_error"
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, option: str, value: str, problem: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"[wfe] {option} = {value!r}: {problem}")


class DagNotFoundError(WfeError):
    """No DAG by that id in Airflow's database (not parsed yet, or removed), where an action on one
    of its runs (a manual compensation) needs it.

    Attributes:
        dag_id: the DAG id asked for.
        problem: what is missing, and what to check.
    """

    code = "dag_not_found"
    http_status = HTTPStatus.NOT_FOUND

    def __init__(
        self, dag_id: str, problem: str = "is not in Airflow's database (is it parsed?)"
    ) -> None:
        self.dag_id = dag_id
        self.problem = problem
        super().__init__(f"DAG {dag_id!r} {problem}")


class HarnessError(WfeError):
    """Raised in a governed task, before it executes, when ``[wfe] fail_closed`` is on and the harness
    could not record the task's start (store unreachable, illegal transition, ...).

    Attributes:
        dag_id, run_id, task_id: the task instance that was stopped.
    """

    code = "harness_error"
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR

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

    code = "invalid_spec"
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, file: str | None, problems: Sequence[Any]) -> None:
        self.file = file
        self.problems = tuple(problems)
        lines = "\n".join(str(problem) for problem in self.problems)
        count = len(self.problems)
        super().__init__(
            f"{file or 'workflow spec'}: {count} problem{'s' if count != 1 else ''}\n{lines}"
        )


class SpoolError(WfeError):
    """The local spool (transitions waiting for the store, see docs/reliability.md) cannot be
    read or written: a corrupt line, a folder that cannot be created.

    Attributes:
        path: the spool file or folder.
        problem: what is wrong, and what to do.
    """

    code = "spool_error"
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"spool {path}: {problem}")


class SpoolFullError(SpoolError):
    """A transition could not be written to the store nor to the spool, which is at its size bound.

    Attributes:
        path: the spool file.
        size: its size in bytes.
        limit: ``[wfe] spool_max_mb`` in bytes.
    """

    code = "spool_full"
    http_status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, path: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            path,
            f"full ({size} bytes, bound {limit} bytes by [wfe] spool_max_mb); the transition was "
            "not recorded. Bring the store back and run `wfe spool flush`, or raise "
            "[wfe] spool_max_mb",
        )


class StateError(WfeError):
    """Base for errors about run and step states."""

    code = "state_error"
    http_status = HTTPStatus.CONFLICT


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

    code = "illegal_transition"
    http_status = HTTPStatus.CONFLICT

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

    code = "run_not_found"
    http_status = HTTPStatus.NOT_FOUND

    def __init__(self, dag_id: str, run_id: str) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        super().__init__(f"no governed run {dag_id}/{run_id} in the state store")


class StoreError(WfeError):
    """Base for errors of the state store."""

    code = "store_error"
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR


class StoreUnavailableError(StoreError):
    """The store cannot be reached or opened (missing directory, locked file, refused connection).

    Attributes:
        url: the store URL with its password masked.
        bound: which configured wait ran out (``"connect"``, ``"statement"``, ``"lock"``), or
            ``None`` when the store failed without a wait (refused, read-only, missing folder).
    """

    code = "store_unavailable"
    http_status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, url: str, problem: str, *, bound: str | None = None) -> None:
        self.url = url
        self.bound = bound
        super().__init__(f"state store {url} is unavailable: {problem}")


class SchemaOutdatedError(StoreError):
    """The store's schema revision is not the one this package needs.

    Attributes:
        url: the store URL with its password masked.
        found: the revision found (``None`` for an empty database).
        expected: the revision this package was built for.
    """

    code = "schema_outdated"
    http_status = HTTPStatus.SERVICE_UNAVAILABLE

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

    code = "concurrent_update"
    http_status = HTTPStatus.CONFLICT

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

    code = "audit_error"
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject}: {problem}")


class MissingExtraError(WfeError):
    """A feature needs an optional dependency that is not installed (Great Expectations for the
    quality gate): the message names the pip extra that brings it.

    Attributes:
        feature: what needs it, e.g. ``quality gate``.
        extra: the extra to install, e.g. ``quality``.
    """

    code = "missing_extra"
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, feature: str, extra: str, cause: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"the {feature} needs an optional dependency ({cause}): "
            f"pip install 'airflow-wfe[{extra}]'"
        )


class PolicyError(WfeError):
    """A policy cannot be evaluated: a CEL expression fails on the facts, a fact is missing, the
    policy folder cannot be read. Gates fail closed on it: never an "allow" by accident.

    Attributes:
        where: the policy and rule (or file) concerned.
        problem: what went wrong.
        policy: the policy's name, when one rule of a loaded policy failed.
        rule: that rule's id.
        file: the file the policy was read from, so the decision recorded names it.
    """

    code = "policy_error"
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(
        self,
        where: str,
        problem: str,
        *,
        policy: str | None = None,
        rule: str | None = None,
        file: str | None = None,
    ) -> None:
        self.where = where
        self.problem = problem
        self.policy = policy
        self.rule = rule
        self.file = file
        located = f" ({file})" if file and file not in where else ""
        super().__init__(f"{where}{located}: {problem}")


class BudgetExceededError(PolicyError):
    """A run spent more than a per-run budget allows; the step that pushed it over fails.

    Attributes:
        spent: what the run has spent, this step included.
        limit: the budget.
        currency: of both.
    """

    code = "budget_exceeded"
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, where: str, spent: float, limit: float, currency: str) -> None:
        self.spent = spent
        self.limit = limit
        self.currency = currency
        super().__init__(
            where, f"the run spent {spent:.2f} {currency}, over its budget of {limit:.2f}"
        )
