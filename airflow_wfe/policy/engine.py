"""The policy engine: pure evaluation of policies against the facts of one gate.

No I/O and no Airflow: the gate (an adapter) gathers the facts, the engine returns a
:class:`Decision` with every reason and the version of every policy that took part, and the gate
records it. The most restrictive outcome wins (deny over needs_approval over allow). Anything that
cannot be evaluated (a CEL expression that fails on these facts, a missing fact) raises
:class:`~airflow_wfe.exceptions.PolicyError`: the gate then fails closed, it never guesses "allow".
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from airflow_wfe.exceptions import PolicyError
from airflow_wfe.policy.models import (
    ApprovalRule,
    BudgetRule,
    ChangeWindowRule,
    ExpressionRule,
    Outcome,
    Policy,
)

__all__ = ["SEVERITY", "Approval", "Decision", "LoadedPolicy", "Reason", "evaluate"]

SEVERITY: Final = {Outcome.ALLOW: 0, Outcome.NEEDS_APPROVAL: 1, Outcome.DENY: 2}


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy with its identity: ``version`` is the file's label plus its content hash."""

    policy: Policy
    content_hash: str
    source: str = "<inline>"

    @property
    def version(self) -> str:
        label = self.policy.version
        short = self.content_hash[:12]
        return f"{label}+{short}" if label else short

    def applies(self, dag_id: str, tags: Sequence[str]) -> bool:
        scope = self.policy.applies_to
        if not any(fnmatch.fnmatchcase(dag_id, pattern) for pattern in scope.dags):
            return False
        return not scope.tags or bool(set(scope.tags) & set(tags))


@dataclass(frozen=True)
class Reason:
    """What one rule concluded, and why."""

    policy: str
    version: str
    rule: str
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class Approval:
    """Who must approve, merged from every approval rule that asked."""

    approvers: tuple[str, ...] = ()
    required: int = 1
    exclude_triggerer: bool = True
    timeout_s: float | None = None
    on_timeout: str = "reject"
    escalate_after_s: float | None = None
    escalate_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The engine's answer: the outcome, every reason, and the versions of the policies involved."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    policies: Mapping[str, str] = field(default_factory=dict)
    approval: Approval | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.outcome.value,
            "reasons": [
                {
                    "policy": r.policy,
                    "version": r.version,
                    "rule": r.rule,
                    "outcome": r.outcome.value,
                    "message": r.message,
                }
                for r in self.reasons
            ],
            "policies": dict(self.policies),
            "approval": None if self.approval is None else self.approval.__dict__,
        }


@functools.lru_cache(maxsize=4096)
def _program(expression: str) -> Any:
    import cel

    return cel.compile(expression)


def _numbers_as_doubles(value: Any) -> Any:
    # CEL does not mix int and double in arithmetic; facts are numbers of either kind, so every
    # number becomes a double and policies compare with 100 or 100.0 alike.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _numbers_as_doubles(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers_as_doubles(v) for v in value]
    return value


class _Evaluator:
    def __init__(self, facts: Mapping[str, Any]) -> None:
        import cel

        self.facts = facts
        self._context = cel.Context(variables=_numbers_as_doubles(dict(facts)))

    def test(self, expression: str, where: str) -> bool:
        try:
            result = _program(expression).execute(self._context)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise PolicyError(where, f"cannot evaluate {expression!r}: {exc}") from None
        if not isinstance(result, bool):
            raise PolicyError(where, f"{expression!r} gave {result!r}, not true or false")
        return result


def _now(facts: Mapping[str, Any]) -> datetime:
    now = facts.get("now")
    if not isinstance(now, datetime):
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _spent(facts: Mapping[str, Any], rule: BudgetRule, where: str) -> tuple[float, float]:
    cost = facts.get("cost") or {}
    try:
        spent = cost["spent"][rule.scope.value]
        if rule.tag is not None:
            spent = spent.get(rule.tag, 0.0)
        return float(spent or 0.0), float(cost.get("reserve") or 0.0)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise PolicyError(where, f"the facts lack cost.spent.{rule.scope.value}") from None


def _budget(rule: BudgetRule, facts: Mapping[str, Any], where: str) -> tuple[Outcome, str]:
    spent, reserve = _spent(facts, rule, where)
    scope = f"{rule.scope.value}" + (f" ({rule.tag})" if rule.tag else "")
    figures = f"spent {spent:.2f} + reserved {reserve:.2f} of {rule.limit:.2f} {rule.currency}"
    if spent + reserve > rule.limit:
        return Outcome.DENY, f"budget {scope} would be exceeded: {figures}"
    return Outcome.ALLOW, f"budget {scope} holds: {figures}"


@functools.lru_cache(maxsize=256)
def _cron_fields(expression: str) -> tuple[frozenset[int] | None, ...]:
    """The allowed values of each of the 5 cron fields (``None``: any), expanded once: matching a
    minute is then five set lookups instead of building a croniter per evaluation."""
    from croniter import croniter

    fields, _ = croniter.expand(expression)
    expanded: list[frozenset[int] | None] = []
    for values in fields[:5]:
        if values == ["*"]:
            expanded.append(None)
        else:
            expanded.append(frozenset(int(v) for v in values))
    return tuple(expanded)


def _cron_matches(expression: str, moment: datetime) -> bool:
    """Whether ``moment`` (a local, naive minute) is one of the expression's minutes, with cron's
    rule that a restricted day of month and day of week match either."""
    minute, hour, day, month, weekday = _cron_fields(expression)
    if minute is not None and moment.minute not in minute:
        return False
    if hour is not None and moment.hour not in hour:
        return False
    if month is not None and moment.month not in month:
        return False
    cron_weekday = (moment.weekday() + 1) % 7  # cron: Sunday is 0 (and 7)
    day_ok = day is None or moment.day in day
    weekday_ok = weekday is None or cron_weekday in weekday or (cron_weekday == 0 and 7 in weekday)
    if day is not None and weekday is not None:
        return day_ok or weekday_ok
    return day_ok and weekday_ok


def _window(rule: ChangeWindowRule, facts: Mapping[str, Any]) -> tuple[Outcome, str]:
    now = _now(facts)
    local = now.astimezone(ZoneInfo(rule.timezone))
    for period in rule.freeze:
        start = period.start if period.start.tzinfo else period.start.replace(tzinfo=local.tzinfo)
        end = period.end if period.end.tzinfo else period.end.replace(tzinfo=local.tzinfo)
        if start <= now < end:
            return Outcome.DENY, f"{period.reason}: frozen until {end.isoformat()}"
    if rule.allow:
        naive = local.replace(tzinfo=None, second=0, microsecond=0)
        if not any(_cron_matches(expression, naive) for expression in rule.allow):
            windows = ", ".join(rule.allow)
            return rule.outside, (
                f"outside the change windows ({windows}, {rule.timezone}) at "
                f"{local.strftime('%a %Y-%m-%d %H:%M %Z')}"
            )
    return Outcome.ALLOW, "inside the change window"


def _approval(rule: ApprovalRule) -> Approval:
    return Approval(
        approvers=rule.approvers,
        required=rule.required,
        exclude_triggerer=rule.exclude_triggerer,
        timeout_s=None if rule.timeout is None else rule.timeout.total_seconds(),
        on_timeout=rule.on_timeout,
        escalate_after_s=(
            None if rule.escalate_after is None else rule.escalate_after.total_seconds()
        ),
        escalate_to=rule.escalate_to,
    )


def _merge(first: Approval | None, second: Approval) -> Approval:
    if first is None:
        return second
    timeouts = [t for t in (first.timeout_s, second.timeout_s) if t is not None]
    return Approval(
        approvers=tuple(dict.fromkeys((*first.approvers, *second.approvers))),
        required=max(first.required, second.required),
        exclude_triggerer=first.exclude_triggerer or second.exclude_triggerer,
        timeout_s=min(timeouts) if timeouts else None,
        on_timeout="reject" if "reject" in (first.on_timeout, second.on_timeout) else "approve",
        escalate_after_s=first.escalate_after_s or second.escalate_after_s,
        escalate_to=tuple(dict.fromkeys((*first.escalate_to, *second.escalate_to))),
    )


def evaluate(policies: Sequence[LoadedPolicy], facts: Mapping[str, Any]) -> Decision:
    """Evaluate every rule of every applicable policy; the most restrictive outcome wins.

    ``facts``: ``run`` (``dag_id``, ``run_id``, ``tags``, ``params``, ...), ``step`` (``id`` and
    what the step declares), ``cost`` (``reserve`` and ``spent`` per budget scope), ``now``
    (a datetime), and anything else policies refer to (``metrics``).

    Raises:
        PolicyError: a rule cannot be evaluated on these facts (the gate fails closed).
    """
    run = facts.get("run") or {}
    dag_id, tags = str(run.get("dag_id", "")), tuple(run.get("tags") or ())
    evaluator = _Evaluator(facts)
    reasons: list[Reason] = []
    versions: dict[str, str] = {}
    approval: Approval | None = None
    for loaded in policies:
        if not loaded.applies(dag_id, tags):
            continue
        name, version = loaded.policy.name, loaded.version
        versions[name] = version
        for rule in loaded.policy.rules:
            where = f"policy {name!r} rule {rule.id!r}"
            outcome, message = Outcome.ALLOW, ""
            if isinstance(rule, ExpressionRule):
                if evaluator.test(rule.when, where):
                    outcome, message = rule.decision, rule.reason
            elif isinstance(rule, BudgetRule):
                outcome, message = _budget(rule, facts, where)
            elif isinstance(rule, ChangeWindowRule):
                outcome, message = _window(rule, facts)
            elif rule.when is None or evaluator.test(rule.when, where):
                if rule.auto_approve_when and evaluator.test(rule.auto_approve_when, where):
                    outcome, message = Outcome.ALLOW, "auto-approved: the policy rates it low risk"
                else:
                    outcome, message = Outcome.NEEDS_APPROVAL, rule.reason
                    approval = _merge(approval, _approval(rule))
            if message:
                reasons.append(Reason(name, version, rule.id, outcome, message))
    outcome = max((r.outcome for r in reasons), key=SEVERITY.__getitem__, default=Outcome.ALLOW)
    if not reasons:
        reasons.append(Reason("-", "-", "-", Outcome.ALLOW, "no policy applies"))
    return Decision(
        outcome=outcome,
        reasons=tuple(reasons),
        policies=versions,
        approval=approval if outcome is Outcome.NEEDS_APPROVAL else None,
    )
