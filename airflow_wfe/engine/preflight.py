"""A run's pre-flight: the checks that stand between CREATED and VALIDATED.

When Airflow starts a governed run (the scheduler's DAG-run hook, or the first task under ``airflow
dags test``, where no DAG-run hook fires), the listener gathers a :class:`RunCandidate` from Airflow's
objects and :func:`run_preflight` checks it:

* ``definition``: the DAG is known to Airflow, with the version the run was created on;
* ``params``: the run's params (the DAG's defaults merged with its conf) hold against the DAG's
  params schema (a YAML workflow's ``params:`` compile to that schema);
* ``policies``: the policy files of ``[wfe] policy_path`` whose ``stages`` name ``start`` and that
  apply to the DAG (budget left, change window, expressions over the run's facts), and the policies
  the DAG carries itself (a YAML workflow's ``budget:``, compiled into the DAG's ``default_args``
  under :data:`DAG_BUDGET_ARG`, the one place the scheduler's serialized DAG keeps it). Pre-flight
  cannot wait for people, so a ``needs_approval`` refuses the run like a ``deny``: put a gate first
  for that.

Every check is recorded with its outcome (the VALIDATED or REJECTED transition's reason and a
decision of kind ``preflight``); the run reaches VALIDATED only when all pass. A check that cannot be
evaluated (a CEL error, a broken policy file whose ``stages`` name ``start`` or cannot be
read) fails closed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from airflow_wfe.core.policy import PolicySet
    from airflow_wfe.core.policy.engine import LoadedPolicy

# The policy package (pydantic models, CEL) loads only when a pre-flight runs, never when a task
# process merely imports this module on its way to the run-start transaction.

__all__ = [
    "DAG_BUDGET_ARG",
    "PREFLIGHT_STEP",
    "Check",
    "PreflightResult",
    "RunCandidate",
    "run_preflight",
]

#: The ``step_id`` a pre-flight decision is recorded under (no task has that id: it has a dot-less
#: hyphen form Airflow task ids may use, so it is also never a saga task's id).
PREFLIGHT_STEP: Final = "pre-flight"
#: The decision kind of a pre-flight.
PREFLIGHT_KIND: Final = "preflight"
#: The ``default_args`` key under which a DAG compiled from a YAML workflow carries its ``budget:``
#: (the inline policy document its gates and cost records evaluate too). ``default_args`` is the
#: one free-form mapping Airflow serializes with a DAG, so the scheduler's pre-flight, which sees
#: only the serialized DAG, reads the same document; operators ignore keys they do not take.
DAG_BUDGET_ARG: Final = "wfe_budget"


@dataclass(frozen=True)
class RunCandidate:
    """What the listener read from Airflow about a run that is starting (plain values only).

    Attributes:
        definition_error: why the DAG's definition or version is unknown (``None``: known).
        dag_version: the Airflow DAG version the run was created on (id), when known.
        params: the run's resolved params, when they validated.
        params_error: why the params do not hold against the DAG's schema (``None``: they hold).
        params_count: how many params the DAG declares.
        own_policies: policy documents (YAML) the DAG carries itself: a YAML workflow's budget.
            They apply to the run whatever their ``stages``, with the start policy files.
    """

    dag_id: str
    run_id: str
    run_type: str | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    conf: Mapping[str, Any] = field(default_factory=dict)
    triggered_by: str | None = None
    dag_version: str | None = None
    definition_error: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    params_error: str | None = None
    params_count: int = 0
    own_policies: tuple[str, ...] = ()

    def facts(self, now: datetime, spent: Mapping[str, Any]) -> dict[str, Any]:
        """The facts start-stage policies see: those a gate sees, without a step."""
        return {
            "run": {
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "run_type": self.run_type,
                "tags": sorted(self.tags),
                "params": dict(self.params),
                "conf": dict(self.conf),
                "triggered_by": self.triggered_by,
                "owner": self.owner,
            },
            "step": {"id": PREFLIGHT_STEP},
            "cost": {"reserve": 0.0, "spent": dict(spent)},
            "now": now,
            "metrics": {},
        }


@dataclass(frozen=True)
class Check:
    """One pre-flight check and its outcome."""

    name: str
    passed: bool
    message: str

    def text(self) -> str:
        return f"{self.name} {'ok' if self.passed else 'FAILED'}: {self.message}"


@dataclass(frozen=True)
class PreflightResult:
    """Every check of one pre-flight, and the start policies' decision (plain, so it can be spooled).

    Attributes:
        reasons: the policy engine's reasons (``policy``, ``version``, ``rule``, ``outcome``,
            ``message``) of the start-stage policies, for the decision record.
        policies: name -> version of every start policy that took part.
    """

    checks: tuple[Check, ...]
    reasons: tuple[Mapping[str, Any], ...] = ()
    policies: Mapping[str, str] = field(default_factory=dict)
    evaluated_at: str | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def outcome(self) -> str:
        return "allow" if self.passed else "deny"

    def summary(self) -> str:
        """One line for the VALIDATED or REJECTED transition: every check and its outcome."""
        head = "pre-flight passed" if self.passed else "pre-flight refused the run"
        return f"{head}: " + "; ".join(check.text() for check in self.checks)

    def decision_reasons(self) -> list[dict[str, Any]]:
        """One reason per check (policy ``pre-flight``, rule = the check), then the policies' own."""
        own = [
            {
                "policy": PREFLIGHT_STEP,
                "version": "-",
                "rule": check.name,
                "outcome": "allow" if check.passed else "deny",
                "message": check.message,
            }
            for check in self.checks
        ]
        return own + [dict(reason) for reason in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {
            "checks": [check.__dict__ for check in self.checks],
            "reasons": [dict(r) for r in self.reasons],
            "policies": dict(self.policies),
            "evaluated_at": self.evaluated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreflightResult:
        return cls(
            checks=tuple(Check(**c) for c in data.get("checks") or ()),
            reasons=tuple(dict(r) for r in data.get("reasons") or ()),
            policies=dict(data.get("policies") or {}),
            evaluated_at=data.get("evaluated_at"),
        )


def _definition(candidate: RunCandidate) -> Check:
    if candidate.definition_error is not None:
        return Check("definition", False, candidate.definition_error)
    version = f"DAG version {candidate.dag_version}" if candidate.dag_version else "no version"
    return Check("definition", True, f"DAG {candidate.dag_id!r} known to Airflow ({version})")


def _params(candidate: RunCandidate) -> Check:
    if candidate.params_error is not None:
        return Check("params", False, candidate.params_error)
    if not candidate.params_count:
        return Check("params", True, "the DAG declares no params")
    return Check(
        "params", True, f"{candidate.params_count} param(s) valid against the DAG's params schema"
    )


def _needs_budget(policies: Sequence[Any]) -> bool:
    from airflow_wfe.core.policy.models import BudgetRule

    return any(isinstance(rule, BudgetRule) for p in policies for rule in p.policy.rules)


def _policies(
    candidate: RunCandidate,
    policy_set: PolicySet,
    spent: Callable[[], Mapping[str, Any]],
    now: datetime,
) -> tuple[Check, tuple[Mapping[str, Any], ...], Mapping[str, str]]:
    from airflow_wfe.core.policy import Outcome, evaluate
    from airflow_wfe.core.policy.models import Stage
    from airflow_wfe.exceptions import PolicyError, WfeError

    start = [
        p for p in policy_set.for_stage(Stage.START) if p.applies(candidate.dag_id, candidate.tags)
    ]
    try:
        start += [_own_policy(candidate.dag_id, text) for text in candidate.own_policies]
    except WfeError as exc:
        return (
            Check(
                "policies", False, f"the DAG's own budget could not be read, failing closed: {exc}"
            ),
            (),
            {},
        )
    broken = [error for error in policy_set.broken if _may_be_start_policy(error)]
    if broken:
        names = "; ".join(str(error) for error in broken)
        return (
            Check(
                "policies",
                False,
                "policy file(s) that may hold a start policy could not be loaded, failing "
                f"closed: {names}",
            ),
            (),
            {},
        )
    if not start:
        return Check("policies", True, "no start policy applies"), (), {}
    try:
        facts = candidate.facts(now, spent() if _needs_budget(start) else {})
        decision = evaluate(start, facts)
    except PolicyError as exc:
        where = f" in {exc.file}" if getattr(exc, "file", None) else ""
        return (
            Check("policies", False, f"could not be evaluated, failing closed{where}: {exc}"),
            (
                {
                    "policy": getattr(exc, "policy", None) or "-",
                    "version": "-",
                    "rule": getattr(exc, "rule", None) or "-",
                    "outcome": "deny",
                    "message": str(exc),
                },
            ),
            {},
        )
    reasons = tuple(decision.to_dict()["reasons"])
    names = ", ".join(sorted(decision.policies))
    if decision.outcome is Outcome.ALLOW:
        return (
            Check("policies", True, f"start policies allow ({names})"),
            reasons,
            decision.policies,
        )
    objections = "; ".join(
        f"{r.policy}/{r.rule}: {r.message}"
        for r in decision.reasons
        if r.outcome is not Outcome.ALLOW
    )
    if decision.outcome is Outcome.NEEDS_APPROVAL:
        objections += " (pre-flight cannot wait for people: approvals belong to a gate)"
    return (
        Check("policies", False, f"start policies say {decision.outcome.value}: {objections}"),
        reasons,
        decision.policies,
    )


@functools.lru_cache(maxsize=256)
def _own_policy(dag_id: str, text: str) -> LoadedPolicy:
    """A policy document the DAG carries (parsed once per text: the scheduler sees it per run)."""
    from airflow_wfe.core.policy.files import parse_policy

    return parse_policy(text, file=f"DAG {dag_id} ({DAG_BUDGET_ARG})")


def _may_be_start_policy(error: Exception) -> bool:
    """Whether a policy file that failed to load may take part in pre-flight: its ``stages`` name
    ``start``, or cannot be determined (fail closed).

    Only a file whose text is a readable YAML mapping with no ``stages`` (the default, ``gate``) or
    with a valid ``stages`` list that leaves ``start`` out is known to be irrelevant here; an
    unreadable file, unparsable YAML, a document that is not a mapping or an invalid ``stages``
    might be the start policy that denies this run, so it refuses the run (the loader's error
    names the file and, where there is one, the line).
    """
    from airflow_wfe.core.policy.models import Stage

    file = getattr(error, "file", None) or getattr(error, "where", None)
    if not file:
        return True
    try:
        from pathlib import Path

        text = Path(str(file)).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return True
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return True
    if not isinstance(data, dict):
        return True
    if "stages" not in data:
        return False  # the default stage is ``gate``
    stages = data["stages"]
    known = {stage.value for stage in Stage}
    if not isinstance(stages, list) or not stages:
        return True
    if not all(isinstance(stage, str) and stage in known for stage in stages):
        return True
    return Stage.START.value in stages


def run_preflight(
    candidate: RunCandidate,
    policy_set: PolicySet,
    spent: Callable[[], Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> PreflightResult:
    """Run every check on ``candidate``. ``spent`` reads the cost ledger (called only when a start
    policy has a budget rule, so a run without one costs no store read)."""
    moment = now or datetime.now(UTC)
    policies, reasons, versions = _policies(candidate, policy_set, spent, moment)
    return PreflightResult(
        checks=(_definition(candidate), _params(candidate), policies),
        reasons=reasons,
        policies=versions,
        evaluated_at=moment.isoformat(),
    )
