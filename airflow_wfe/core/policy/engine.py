"""The policy engine: pure evaluation of policies against the facts of one gate.

No I/O and no Airflow: the gate (an adapter) gathers the facts, the engine returns a
:class:`Decision` with every reason and the version of every policy that took part, and the gate
records it. The most restrictive outcome wins (deny over needs_approval over allow). Anything that
cannot be evaluated (a CEL expression that fails on these facts, a missing fact) raises
:class:`~airflow_wfe.exceptions.PolicyError`: the gate then fails closed, it never guesses "allow".
"""

from __future__ import annotations

import copy
import fnmatch
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from airflow_wfe.core.policy.models import (
    ApprovalRule,
    BudgetRule,
    ChangeWindowRule,
    ExpressionRule,
    Outcome,
    Policy,
)
from airflow_wfe.exceptions import PolicyError

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
    # number becomes a double and policies compare with 100 or 100.0 alike. The exact plain types
    # (most facts) are told apart by ``type``; subclasses and other containers take the general path.
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        return float(value)
    if kind is dict:
        return {str(k): _numbers_as_doubles(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_numbers_as_doubles(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _numbers_as_doubles(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers_as_doubles(v) for v in value]
    return value


class _Test:
    """A rule's CEL expression, compiled once per policy (or the error compiling it gave)."""

    __slots__ = ("error", "expression", "program", "variables")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.program: Any = None
        self.error: Exception | None = None
        self.variables: tuple[str, ...] | None = ()
        try:
            self.program = _program(expression)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            self.error = exc  # reported by the evaluation, like any expression that cannot run
            return
        try:
            self.variables = tuple(self.program.variables())
        except Exception:  # noqa: BLE001 - not knowing the names only means converting every fact
            self.variables = None


_EXPRESSION, _BUDGET, _WINDOW, _APPROVAL = range(4)


class _Step:
    """What evaluating one rule needs, worked out once per policy rather than per evaluation."""

    __slots__ = (
        "allow",
        "auto",
        "freeze",
        "kind",
        "label",
        "limit",
        "rule",
        "when",
        "where",
        "zone",
    )

    def __init__(self, policy: str, rule: Any) -> None:
        self.rule = rule
        self.where = f"policy {policy!r} rule {rule.id!r}"
        self.when: _Test | None = None
        self.auto: _Test | None = None
        self.zone: ZoneInfo | None = None
        self.freeze: tuple[tuple[datetime, datetime, str], ...] = ()
        self.allow: tuple[_Cron, ...] = ()
        self.label = self.limit = ""
        if isinstance(rule, ExpressionRule):
            self.kind = _EXPRESSION
            self.when = _Test(rule.when)
        elif isinstance(rule, BudgetRule):
            self.kind = _BUDGET
            self.label = f"{rule.scope.value}" + (f" ({rule.tag})" if rule.tag else "")
            self.limit = f"{rule.limit:.2f} {rule.currency}"
        elif isinstance(rule, ChangeWindowRule):
            self.kind = _WINDOW
            zone = self.zone = ZoneInfo(rule.timezone)
            # A naive freeze bound is in the rule's zone (the zone ``now`` is converted to).
            self.freeze = tuple(
                (
                    p.start if p.start.tzinfo else p.start.replace(tzinfo=zone),
                    p.end if p.end.tzinfo else p.end.replace(tzinfo=zone),
                    p.reason,
                )
                for p in rule.freeze
            )
            self.allow = tuple(_Cron(expression) for expression in rule.allow)
        else:
            self.kind = _APPROVAL
            self.when = None if rule.when is None else _Test(rule.when)
            self.auto = None if rule.auto_approve_when is None else _Test(rule.auto_approve_when)


class _Plan:
    """A policy ready to evaluate: its version, its rules' steps, the facts its expressions read."""

    __slots__ = ("name", "source", "steps", "variables", "version")

    def __init__(self, loaded: LoadedPolicy) -> None:
        self.name = loaded.policy.name
        self.source = loaded.source
        self.version = loaded.version
        self.steps = tuple(_Step(self.name, rule) for rule in loaded.policy.rules)
        tests = [t for step in self.steps for t in (step.when, step.auto) if t is not None]
        names = [test.variables for test in tests]
        #: the top-level facts the expressions read; ``None``: unknown, so every fact
        self.variables: frozenset[str] | None = (
            None if None in names else frozenset(n for found in names for n in found or ())
        )


#: Plans by ``id`` of their (immutable) policy, which the entry keeps alive so the id stays its own.
_PLANS: dict[int, tuple[LoadedPolicy, _Plan]] = {}
_MAX_PLANS: Final = 1024


def _plan(loaded: LoadedPolicy) -> _Plan:
    entry = _PLANS.get(id(loaded))
    if entry is not None and entry[0] is loaded:
        return entry[1]
    plan = _Plan(loaded)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[id(loaded)] = (loaded, plan)
    return plan


class _Evaluator:
    """Evaluates expressions against the facts, converted to CEL values once per evaluation.

    Only the top-level facts the expressions name are converted (CEL resolves no other name), and
    only when the first expression runs: converting nested facts is most of an evaluation's cost.
    """

    def __init__(self, facts: Mapping[str, Any], names: frozenset[str] | None) -> None:
        self.facts = facts
        self._names = names
        self._context: Any = None

    def _build(self) -> Any:
        import cel

        facts, names = self.facts, self._names
        if names is None:
            return cel.Context(variables=_numbers_as_doubles(dict(facts)))
        variables = {name: _numbers_as_doubles(facts[name]) for name in names if name in facts}
        return cel.Context(variables=variables)

    def test(self, test: _Test, where: str) -> bool:
        expression = test.expression
        if test.program is None:
            raise PolicyError(where, f"cannot evaluate {expression!r}: {test.error}")
        try:
            context = self._context
            if context is None:  # a fact CEL cannot hold fails here, like any other fact problem
                context = self._context = self._build()
            result = test.program.execute(context)
        except Exception as exc:  # noqa: BLE001 - any failure (division by zero too) fails closed
            raise PolicyError(where, f"cannot evaluate {expression!r}: {exc}") from None
        if result is not True and result is not False:
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
        held = (cost["spent"].get("currencies") or {}).get(rule.scope.value) or []
        if rule.tag is not None:
            spent = spent.get(rule.tag, 0.0)
            held = held.get(rule.tag, []) if isinstance(held, Mapping) else []
        total, reserve = float(spent or 0.0), float(cost.get("reserve") or 0.0)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise PolicyError(where, f"the facts lack cost.spent.{rule.scope.value}") from None
    others = sorted(set(held) - {rule.currency})
    if others:  # amounts are never converted: a sum in another currency says nothing here
        raise PolicyError(
            where,
            f"this budget is in {rule.currency} but the ledger's {rule.scope.value} spending is in "
            f"{', '.join(sorted(set(held)))}; amounts are never converted: keep a DAG's costs and "
            "its budgets in one currency",
        )
    return total, reserve


def _budget(step: _Step, facts: Mapping[str, Any]) -> tuple[Outcome, str]:
    rule = step.rule
    spent, reserve = _spent(facts, rule, step.where)
    figures = f"spent {spent:.2f} + reserved {reserve:.2f} of {step.limit}"
    if spent + reserve > rule.limit:
        return Outcome.DENY, f"budget {step.label} would be exceeded: {figures}"
    return Outcome.ALLOW, f"budget {step.label} holds: {figures}"


class _Cron:
    """One cron expression, parsed once, matched the way ``croniter.match`` matches it.

    croniter's own matcher, so every form it accepts at load means what cron means: ``mon#2`` the
    second Monday, ``L`` the last day of the month, a restricted day of month or of week matching
    either (a hand-written expansion of the fields lost ``#`` and crashed on ``L``). ``match``
    parses the expression on every call (~140 of its ~180 µs); here the parsed iterator is kept
    and each match steps a shallow copy of it (~25 µs), so evaluations on several threads never
    share the position it moves.
    """

    __slots__ = ("expression", "parsed")

    def __init__(self, expression: str) -> None:
        from croniter import croniter

        self.expression = expression
        self.parsed = croniter(expression, datetime(2000, 1, 1), ret_type=datetime)

    def matches(self, moment: datetime) -> bool:
        """Whether ``moment`` (a local, naive minute) is one of the expression's minutes: the
        previous fire time strictly before the minute's first microsecond is the minute itself."""
        from croniter import CroniterBadDateError

        probe = moment.replace(second=0, microsecond=1)
        cron = copy.copy(self.parsed)
        cron.set_current(probe, force=True)
        try:
            previous = cron.get_prev()
        except CroniterBadDateError:
            return False
        return bool(abs((probe - previous).total_seconds()) < 60)


def _window(step: _Step, facts: Mapping[str, Any]) -> tuple[Outcome, str]:
    rule = step.rule
    now = _now(facts)
    local = now.astimezone(step.zone)
    for start, end, reason in step.freeze:
        if start <= now < end:
            return Outcome.DENY, f"{reason}: frozen until {end.isoformat()}"
    if rule.allow:
        naive = local.replace(tzinfo=None, second=0, microsecond=0)
        if not any(cron.matches(naive) for cron in step.allow):
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


def _facts_read(plans: Sequence[_Plan]) -> frozenset[str] | None:
    """The top-level facts the plans' expressions read (``None``: unknown, so every fact)."""
    if len(plans) == 1:
        return plans[0].variables
    names: set[str] = set()
    for plan in plans:
        if plan.variables is None:
            return None
        names.update(plan.variables)
    return frozenset(names)


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
    plans = [_plan(loaded) for loaded in policies if loaded.applies(dag_id, tags)]
    evaluator = _Evaluator(facts, _facts_read(plans))
    reasons: list[Reason] = []
    versions: dict[str, str] = {}
    approval: Approval | None = None
    for plan in plans:
        name, version = plan.name, plan.version
        versions[name] = version
        for step in plan.steps:
            try:
                found = _evaluate_rule(step, facts, evaluator)
            except PolicyError as exc:
                raise PolicyError(
                    exc.where, exc.problem, policy=name, rule=step.rule.id, file=plan.source
                ) from exc.__cause__
            except Exception as exc:
                raise PolicyError(
                    step.where,
                    f"cannot be evaluated: {type(exc).__name__}: {exc}",
                    policy=name,
                    rule=step.rule.id,
                    file=plan.source,
                ) from exc
            if found is None:
                continue
            outcome, message, asked = found
            if asked is not None:
                approval = _merge(approval, asked)
            if message:
                reasons.append(Reason(name, version, step.rule.id, outcome, message))
    outcome = max((r.outcome for r in reasons), key=SEVERITY.__getitem__, default=Outcome.ALLOW)
    if not reasons:
        reasons.append(Reason("-", "-", "-", Outcome.ALLOW, "no policy applies"))
    return Decision(
        outcome=outcome,
        reasons=tuple(reasons),
        policies=versions,
        approval=approval if outcome is Outcome.NEEDS_APPROVAL else None,
    )


def _evaluate_rule(
    step: _Step, facts: Mapping[str, Any], evaluator: _Evaluator
) -> tuple[Outcome, str, Approval | None] | None:
    """One rule's outcome, message and approval request; ``None`` when it does not apply."""
    kind = step.kind
    rule = step.rule
    if kind is _EXPRESSION:
        if evaluator.test(step.when, step.where) and rule.reason:  # type: ignore[arg-type]
            return rule.decision, rule.reason, None
        return None
    if kind is _BUDGET:
        return (*_budget(step, facts), None)
    if kind is _WINDOW:
        return (*_window(step, facts), None)
    if step.when is not None and not evaluator.test(step.when, step.where):
        return None
    if step.auto is not None and evaluator.test(step.auto, step.where):
        return Outcome.ALLOW, "auto-approved: the policy rates it low risk", None
    return Outcome.NEEDS_APPROVAL, rule.reason, _approval(rule)
