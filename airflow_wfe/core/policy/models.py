"""Organization policies as data: strict pydantic models of the YAML files under ``[wfe] policy_path``.

A policy is a list of rules. Each rule looks at the *facts* of a gate (the run, the step, the costs so
far, the time) and may object: ``deny``, or ``needs_approval``. Rules of kind ``expression`` are
written in CEL (Common Expression Language: no loops, no side effects, no access to anything but the
facts), never in Python, so a policy file cannot run code. The other kinds are the built-in checks
every organization needs: budgets, change windows and approvals.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from airflow_wfe.core.spec.models import PositiveDuration

__all__ = [
    "Applies",
    "ApprovalRule",
    "BudgetRule",
    "BudgetScope",
    "ChangeWindowRule",
    "ExpressionRule",
    "FreezePeriod",
    "Outcome",
    "Policy",
    "Rule",
    "Stage",
]

RULE_ID: Final = r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$"


class Outcome(StrEnum):
    """What a gate decides (ordered from the least to the most restrictive in :data:`SEVERITY`)."""

    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


class Stage(StrEnum):
    """When a policy is evaluated: at a gate (the default); at a run's pre-flight (``start``),
    before any step runs, on the run's facts (no ``step``; ``cost.reserve`` is 0); or when Airflow
    parses a governed DAG (``parse``), on the DAG's facts (``dag``: owner, tags, schedule, tasks
    with their retries, timeouts, compensations and gates), a refusal being the file's import error.
    """

    GATE = "gate"
    START = "start"
    PARSE = "parse"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _check_cel(expression: str) -> str:
    import cel

    try:
        cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"not a valid CEL expression: {first}") from None
    return expression


class ExpressionRule(_Strict):
    """Objects when a CEL expression over the facts is true, e.g. ``run.params.env == "prod"``."""

    kind: Literal["expression"] = "expression"
    id: str = Field(pattern=RULE_ID)
    when: str = Field(min_length=1, description="CEL expression over run, step, cost, now")
    decision: Outcome
    reason: str = Field(min_length=1, description="why, shown with the decision")

    _cel = field_validator("when")(classmethod(lambda cls, v: _check_cel(v)))


class BudgetScope(StrEnum):
    """What a budget limits: this run, the DAG per day or month, a tag (team) per day or month."""

    RUN = "run"
    DAG_DAY = "dag_day"
    DAG_MONTH = "dag_month"
    TAG_DAY = "tag_day"
    TAG_MONTH = "tag_month"


class BudgetRule(_Strict):
    """Denies a step whose reserved cost would take spending in ``scope`` over ``limit``."""

    kind: Literal["budget"]
    id: str = Field(pattern=RULE_ID)
    scope: BudgetScope
    limit: float = Field(ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    tag: str | None = Field(default=None, description="the tag (team) of tag_* scopes")

    @model_validator(mode="after")
    def _tag_scope(self) -> BudgetRule:
        needs_tag = self.scope in (BudgetScope.TAG_DAY, BudgetScope.TAG_MONTH)
        if needs_tag and not self.tag:
            raise ValueError(f"scope {self.scope} needs `tag`")
        if not needs_tag and self.tag:
            raise ValueError(f"`tag` only goes with tag_day or tag_month, not {self.scope}")
        return self


class FreezePeriod(_Strict):
    """A period when changes stop (holidays, a release freeze)."""

    start: datetime
    end: datetime
    reason: str = "change freeze"

    @model_validator(mode="after")
    def _ordered(self) -> FreezePeriod:
        if self.end <= self.start:
            raise ValueError("`end` must come after `start`")
        return self


_CRON_FIELDS: Final = re.compile(r"^\S+(\s+\S+){4}$")


class ChangeWindowRule(_Strict):
    """Freeze periods, and the windows changes are allowed in (cron fields, in a time zone)."""

    kind: Literal["change_window"]
    id: str = Field(pattern=RULE_ID)
    timezone: str = Field(default="UTC", description="IANA zone, e.g. Europe/Paris")
    freeze: tuple[FreezePeriod, ...] = ()
    allow: tuple[str, ...] = Field(
        default=(), description='cron expressions of allowed minutes, e.g. "* 9-17 * * mon-fri"'
    )
    outside: Outcome = Field(default=Outcome.DENY, description="decision outside the windows")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("allow")
    @classmethod
    def _crons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from croniter import croniter

        for expression in value:
            if not _CRON_FIELDS.match(expression) or not croniter.is_valid(expression):
                raise ValueError(f"{expression!r} is not a 5-field cron expression")
        return value


class ApprovalRule(_Strict):
    """Asks people before the step runs, unless ``auto_approve_when`` says the change is low risk."""

    kind: Literal["approval"]
    id: str = Field(pattern=RULE_ID)
    when: str | None = Field(default=None, description="CEL: only then (default: always)")
    auto_approve_when: str | None = Field(default=None, description="CEL: low risk, allow")
    approvers: tuple[str, ...] = Field(default=(), description="Airflow user ids who may approve")
    required: int = Field(default=1, ge=1, description="distinct approvers needed")
    exclude_triggerer: bool = Field(default=True, description="the run's triggerer cannot approve")
    timeout: PositiveDuration | None = None
    on_timeout: Literal["approve", "reject"] = "reject"
    escalate_after: PositiveDuration | None = None
    escalate_to: tuple[str, ...] = ()
    reason: str = "a person must approve this change"

    _cel = field_validator("when", "auto_approve_when")(
        classmethod(lambda cls, v: None if v is None else _check_cel(v))
    )

    @model_validator(mode="after")
    def _escalation(self) -> ApprovalRule:
        if bool(self.escalate_after) != bool(self.escalate_to):
            raise ValueError("`escalate_after` and `escalate_to` go together")
        return self


def _rule_kind(value: Any) -> str:
    # `kind` may be left out for the most common rule, a CEL expression.
    if isinstance(value, dict):
        return str(value.get("kind", "expression"))
    return str(getattr(value, "kind", "expression"))


Rule = Annotated[
    Annotated[ExpressionRule, Tag("expression")]
    | Annotated[BudgetRule, Tag("budget")]
    | Annotated[ChangeWindowRule, Tag("change_window")]
    | Annotated[ApprovalRule, Tag("approval")],
    Discriminator(_rule_kind),
]


class Applies(_Strict):
    """Which DAGs a policy governs: DAG id patterns (``fnmatch``) and, if given, tags."""

    dags: tuple[str, ...] = ("*",)
    tags: tuple[str, ...] = ()


class Policy(_Strict):
    """One policy file."""

    name: str = Field(pattern=RULE_ID)
    version: str | None = Field(default=None, max_length=64, description="your label")
    description: str = ""
    applies_to: Applies = Field(default_factory=Applies)
    stages: tuple[Stage, ...] = Field(
        default=(Stage.GATE,),
        description="when it is evaluated: gate (gates taking every policy), start (a run's "
        "pre-flight), parse (when Airflow parses a governed DAG)",
    )
    # Not min_length: pydantic would also report "too short" for a list whose items are invalid.
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Policy:
        if not self.rules:
            raise ValueError("a policy needs at least one rule")
        if not self.stages:
            raise ValueError("`stages` needs at least one of gate, start, parse")
        if Stage.PARSE in self.stages:
            others = [r.id for r in self.rules if not isinstance(r, ExpressionRule)]
            if others:
                raise ValueError(
                    "a parse-stage policy holds expression rules only (a DAG being parsed has no "
                    f"costs, time window or approvers); not: {', '.join(others)}"
                )
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} appears twice")
            seen.add(rule.id)
        return self
