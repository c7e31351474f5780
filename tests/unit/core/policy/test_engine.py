"""The policy engine on its own: every rule kind, how outcomes combine, and failing closed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_wfe.core.policy import Approval, Outcome, evaluate, parse_policy, select
from airflow_wfe.engine.gate_decisions import judge_answer
from airflow_wfe.exceptions import PolicyError, SpecError

WINDOWS = """
name: windows
version: "7"
rules:
  - id: office-hours
    kind: change_window
    timezone: Europe/Paris
    allow: ["* 9-17 * * mon-fri"]
    outside: needs_approval
  - id: freeze
    kind: change_window
    timezone: UTC
    freeze: [{start: 2026-12-24T00:00:00Z, end: 2026-12-27T00:00:00Z, reason: christmas}]
"""

RULES = """
name: rules
applies_to: {dags: ["deploy_*"]}
rules:
  - id: prod
    when: 'run.params.env == "prod"'
    decision: needs_approval
    reason: production
  - id: error-rate
    when: metrics.error_rate > 0.05
    decision: deny
    reason: the canary errs too much
  - id: two
    kind: approval
    when: step.risk == "high"
    approvers: [alice]
    required: 2
    timeout: 1h
  - id: three
    kind: approval
    when: step.risk == "high"
    approvers: [bob]
    timeout: 30m
    on_timeout: approve
"""

BUDGETS = """
name: budgets
rules:
  - {id: run, kind: budget, scope: run, limit: 10}
  - {id: team, kind: budget, scope: tag_month, tag: ml, limit: 100, currency: EUR}
"""


def facts(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run": {"dag_id": "deploy_web", "params": {"env": "dev"}, "tags": ["ml"]},
        "step": {"id": "gate", "risk": "low"},
        "cost": {"reserve": 1, "spent": {"run": 2, "tag_month": {"ml": 50}}},
        "metrics": {"error_rate": 0.01},
        "now": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),  # a Wednesday, 11:00 in Paris
    }
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


def test_nothing_objects_allow_with_every_reason() -> None:
    decision = evaluate([parse_policy(RULES), parse_policy(BUDGETS)], facts())
    assert decision.outcome is Outcome.ALLOW
    assert [r.rule for r in decision.reasons] == ["run", "team"]
    assert (
        decision.reasons[1].message
        == "budget tag_month (ml) holds: spent 50.00 + reserved 1.00 of 100.00 EUR"
    )
    assert decision.policies["rules"] == parse_policy(RULES).content_hash[:12]


def test_deny_wins_over_needs_approval() -> None:
    decision = evaluate(
        [parse_policy(RULES)], facts(run={"params": {"env": "prod"}}, metrics={"error_rate": 0.2})
    )
    assert decision.outcome is Outcome.DENY
    assert {(r.rule, r.outcome) for r in decision.reasons} == {
        ("prod", Outcome.NEEDS_APPROVAL),
        ("error-rate", Outcome.DENY),
    }
    assert decision.approval is None


def test_approval_rules_merge() -> None:
    decision = evaluate([parse_policy(RULES)], facts(step={"risk": "high"}))
    assert decision.outcome is Outcome.NEEDS_APPROVAL
    assert decision.approval == Approval(
        approvers=("alice", "bob"), required=2, timeout_s=1800.0, on_timeout="reject"
    )


def test_a_policy_for_other_dags_is_not_evaluated() -> None:
    decision = evaluate([parse_policy(RULES)], facts(run={"dag_id": "etl"}))
    assert decision.policies == {}
    assert decision.reasons[0].message == "no policy applies"


def test_budget_denies_what_would_pass_the_limit() -> None:
    decision = evaluate([parse_policy(BUDGETS)], facts(cost={"reserve": 8.5}))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons[0].message == (
        "budget run would be exceeded: spent 2.00 + reserved 8.50 of 10.00 USD"
    )


@pytest.mark.parametrize(
    ("now", "outcome", "message"),
    [
        (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), Outcome.ALLOW, None),
        (
            datetime(2026, 11, 25, 17, 30, tzinfo=UTC),
            Outcome.NEEDS_APPROVAL,
            "Wed 2026-11-25 18:30 CET",
        ),
        (
            datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
            Outcome.NEEDS_APPROVAL,
            "Sat 2026-11-28 11:00 CET",
        ),
        (datetime(2026, 12, 24, 10, 0, tzinfo=UTC), Outcome.DENY, "christmas: frozen until"),
    ],
)
def test_change_windows(now: datetime, outcome: Outcome, message: str | None) -> None:
    decision = evaluate([parse_policy(WINDOWS)], facts(now=now))
    assert decision.outcome is outcome
    if message:
        assert any(message in r.message for r in decision.reasons), decision.reasons


def test_an_expression_that_cannot_be_evaluated_fails_closed() -> None:
    broken = facts()
    del broken["metrics"]
    with pytest.raises(
        PolicyError, match=r"policy 'rules' rule 'error-rate' \(<string>\): cannot evaluate"
    ):
        evaluate([parse_policy(RULES)], broken)


def test_only_the_facts_expressions_name_are_handed_to_cel() -> None:
    """Facts are converted to CEL once per evaluation, and only those an expression names: a fact
    CEL could not hold is no obstacle until a rule reads it, and then the gate fails closed."""
    odd = facts(metrics={"error_rate": 0.01}, extra=object())
    assert evaluate([parse_policy(RULES)], odd).outcome is Outcome.ALLOW
    policy = parse_policy(
        "name: p\nrules:\n  - {id: r, when: 'extra == 1', decision: deny, reason: x}\n"
    )
    with pytest.raises(
        PolicyError, match=r"policy 'p' rule 'r' \(<string>\): cannot evaluate 'extra == 1'"
    ):
        evaluate([policy], odd)
    # the same policy object, evaluated again on other facts, decides from those facts
    rules = parse_policy(RULES)
    assert evaluate([rules], facts()).outcome is Outcome.ALLOW
    prod = facts(run={"params": {"env": "prod"}})
    assert evaluate([rules], prod).outcome is Outcome.NEEDS_APPROVAL


def test_a_non_boolean_expression_fails_closed() -> None:
    policy = parse_policy(
        "name: p\nrules:\n  - {id: r, when: 'run.dag_id', decision: deny, reason: x}\n"
    )
    with pytest.raises(PolicyError, match="not true or false"):
        evaluate([policy], facts())


def test_invalid_files_name_the_line() -> None:
    with pytest.raises(SpecError) as info:
        parse_policy(
            "name: p\nrules:\n  - id: r\n    when: 'run.x =='\n    decision: maybe\n    reason: x\n"
            "  - {id: w, kind: change_window, timezone: Mars/Olympus, allow: ['61 * * * *']}\n",
            file="p.yaml",
        )
    text = str(info.value)
    assert "p.yaml: 4 problems" in text
    assert "p.yaml:4: rules[0].when: not a valid CEL expression" in text
    assert "p.yaml:5: rules[0].decision: expected 'allow', 'needs_approval' or 'deny'" in text
    assert "unknown time zone 'Mars/Olympus'" in text
    assert "'61 * * * *' is not a 5-field cron expression" in text


def test_select_names_unknown_policies() -> None:
    with pytest.raises(
        PolicyError, match="unknown policy nope \\(policies in policy_path: rules\\)"
    ):
        select([parse_policy(RULES)], ["nope"])


def test_judge_answer_two_person_rule() -> None:
    rule = Approval(approvers=(), required=2, exclude_triggerer=True)
    judge = lambda who, before=(): judge_answer(  # noqa: E731
        rule,
        chosen=["Approve"],
        responder=who,
        triggerer="tom",
        approved_by=before,
        escalated=False,
    )
    assert judge("tom").outcome == "refused"
    assert judge("ann").outcome == "pending"
    assert judge("ann", ("ann",)).outcome == "refused"
    assert judge("bob", ("ann",)).outcome == "approved"
    rejected = judge_answer(
        rule, chosen=["Reject"], responder="ann", triggerer="tom", approved_by=(), escalated=False
    )
    assert rejected.outcome == "rejected"


def test_judge_answer_allowed_approvers_and_escalation() -> None:
    rule = Approval(approvers=("carol",), escalate_to=("bob",))
    assert (
        judge_answer(
            rule,
            chosen=["Approve"],
            responder="bob",
            triggerer=None,
            approved_by=(),
            escalated=False,
        ).outcome
        == "refused"
    )
    assert (
        judge_answer(
            rule,
            chosen=["Approve"],
            responder="bob",
            triggerer=None,
            approved_by=(),
            escalated=True,
        ).outcome
        == "approved"
    )


def test_cron_windows_match_croniter_minute_by_minute() -> None:
    """The engine's parsed-once cron matching agrees with ``croniter.match`` across a year (every
    97th minute), one prepared expression reused for every minute as a policy's rule reuses it:
    ranges, steps, day of month or of week, ``#`` and ``L``."""
    from datetime import timedelta

    from croniter import croniter

    from airflow_wfe.core.policy.engine import _Cron

    expressions = [
        "* 9-17 * * mon-fri",
        "*/15 * 1 * *",
        "0 0 1 * sun",
        "5 4 13 * 5",
        "* * * * 7",
        "* 9-17 * * mon#2",
        "*/20 * L * *",
        "30 8-10 1,15 * fri",
    ]
    prepared = [_Cron(expression) for expression in expressions]
    start = datetime(2026, 1, 1)
    matched = 0
    for step in range(0, 60 * 24 * 366, 97):
        moment = start + timedelta(minutes=step)
        for cron in prepared:
            expected = croniter.match(cron.expression, moment)
            assert cron.matches(moment) == expected, (cron.expression, moment)
            matched += expected
    assert matched > 100  # the sample holds matching minutes, not only misses


@pytest.mark.parametrize(
    ("allow", "now", "outcome"),
    [
        # December 2026 starts on a Tuesday: its Mondays are the 7th, 14th, 21st and 28th.
        ("* 9-17 * * mon#2", datetime(2026, 12, 14, 10, 0, tzinfo=UTC), Outcome.ALLOW),
        ("* 9-17 * * mon#2", datetime(2026, 12, 7, 10, 0, tzinfo=UTC), Outcome.DENY),
        ("* 9-17 * * mon#2", datetime(2026, 12, 21, 10, 0, tzinfo=UTC), Outcome.DENY),
        ("* * L * *", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), Outcome.ALLOW),
        ("* * L * *", datetime(2026, 12, 30, 12, 0, tzinfo=UTC), Outcome.DENY),
        ("* * L * *", datetime(2026, 2, 28, 12, 0, tzinfo=UTC), Outcome.ALLOW),
    ],
)
def test_change_windows_mean_what_cron_means(allow: str, now: datetime, outcome: Outcome) -> None:
    """``#`` (nth weekday) and ``L`` (last day) were accepted at load, then ``mon#2`` allowed every
    Monday and ``L`` crashed the gate; croniter's own matcher gives cron's meaning."""
    policy = parse_policy(
        f"name: w\nrules:\n  - {{id: w, kind: change_window, allow: ['{allow}']}}\n"
    )
    assert evaluate([policy], facts(now=now)).outcome is outcome


def test_an_arithmetic_error_fails_closed_naming_policy_rule_and_file() -> None:
    policy = parse_policy(
        "name: ratio\nrules:\n  - {id: r, when: 'int(run.params.a) / int(run.params.b) > 0',"
        " decision: deny, reason: x}\n",
        file="ratio.yaml",
    )
    with pytest.raises(PolicyError, match="division by zero") as caught:
        evaluate([policy], facts(run={"params": {"a": 1, "b": 0}}))
    assert (caught.value.policy, caught.value.rule, caught.value.file) == (
        "ratio",
        "r",
        "ratio.yaml",
    )
    assert str(caught.value).startswith("policy 'ratio' rule 'r' (ratio.yaml): cannot evaluate")
