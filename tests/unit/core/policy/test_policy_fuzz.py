"""Fuzzed policy files and facts (issue #22): a broken policy is a located error, never a crash.

Every policy file of the repository and one file with every rule kind are mutated the way people
break YAML (``tests/yaml_mutations.py``). A mutation either loads or fails with a ``SpecError`` whose
every problem names the file and a line inside it. A policy that loads is then evaluated on random
facts: the answer is a decision, or a ``PolicyError`` naming the policy, the rule and the file (the
gate records it as a deny); any other exception would reach Airflow as a crashed gate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from yaml_mutations import mutated_documents, values

from airflow_wfe.core.policy import Decision, evaluate, parse_policy
from airflow_wfe.exceptions import PolicyError, SpecError

ROOT = Path(__file__).resolve().parents[4]

EVERY_KIND = """\
name: every-kind
version: "1"
applies_to: {dags: ["fuzz*"], tags: [fuzz]}
rules:
  - id: prod-needs-ok
    when: 'run.params.env == "prod" && step.risk != "low"'
    decision: needs_approval
    reason: production changes are approved by a person
  - id: ratio
    when: 'run.params.errors / run.params.total > 0.5'
    decision: deny
    reason: too many errors
  - id: team-budget
    kind: budget
    scope: tag_month
    tag: fuzz
    limit: 2500
    currency: EUR
  - id: run-budget
    kind: budget
    scope: run
    limit: 10
  - id: windows
    kind: change_window
    timezone: Europe/Paris
    allow: ["* 9-17 * * mon-fri", "0 10 * * mon#2", "0 0 L * *"]
    freeze: [{start: 2026-12-20T00:00:00, end: 2027-01-04T00:00:00, reason: year-end freeze}]
    outside: deny
  - id: four-eyes
    kind: approval
    when: 'step.risk == "high"'
    auto_approve_when: 'run.params.dry_run == true'
    approvers: [alice, bob, carol]
    required: 2
    exclude_triggerer: true
    escalate_after: 30m
    escalate_to: [oncall-lead]
    timeout: 2h
    on_timeout: reject
"""


def _bases() -> list[dict[str, Any]]:
    files = sorted((ROOT / "dags" / "policies").glob("*.yaml"))
    files += sorted((ROOT / "tests" / "policies").glob("*.yaml"))
    assert files, "the repository's policy files are the fuzz corpus"
    return [yaml.safe_load(EVERY_KIND)] + [yaml.safe_load(f.read_text()) for f in files]


BASES = _bases()

facts = st.fixed_dictionaries(
    {
        "run": st.fixed_dictionaries(
            {
                "dag_id": st.sampled_from(["fuzz_dag", "wfe_example_cicd", "other"]),
                "tags": st.lists(st.sampled_from(["fuzz", "release", "x"]), max_size=2),
                "params": st.dictionaries(
                    st.sampled_from(["env", "errors", "total", "dry_run", "environment"]),
                    values,
                    max_size=4,
                ),
            }
        ),
        "step": st.dictionaries(st.sampled_from(["id", "risk"]), values, max_size=2),
        "change": st.dictionaries(st.sampled_from(["risk", "why"]), values, max_size=2),
        "cost": st.fixed_dictionaries(
            {"reserve": values, "spent": st.dictionaries(st.sampled_from(["run"]), values)}
        ),
        "now": st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
    }
)


def test_the_base_documents_load() -> None:
    for base in BASES:
        parse_policy(yaml.safe_dump(base), file="base.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents(BASES), facts)
def test_a_mutated_policy_loads_or_is_located_and_evaluates_or_fails_closed(
    text: str, given_facts: dict[str, Any]
) -> None:
    try:
        loaded = parse_policy(text, file="fuzz.yaml")
    except SpecError as exc:
        refused: SpecError | None = exc
    else:
        refused = None
    if refused is not None:
        event("refused at load")
        assert refused.problems
        last_line = max(1, len(text.splitlines()))
        for problem in refused.problems:
            assert problem.file == "fuzz.yaml"
            assert isinstance(problem.line, int), str(problem)
            assert 1 <= problem.line <= last_line, str(problem)
            assert problem.message
        return
    _assert_decides_or_fails_closed(loaded, given_facts)


APPLYING_EVERYWHERE = [
    parse_policy(
        yaml.safe_dump({k: v for k, v in base.items() if k != "applies_to"}), file=f"{i}.yaml"
    )
    for i, base in enumerate(BASES)
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(APPLYING_EVERYWHERE), facts)
def test_any_facts_give_a_decision_or_a_located_deny(
    loaded: Any, given_facts: dict[str, Any]
) -> None:
    _assert_decides_or_fails_closed(loaded, given_facts)


def _assert_decides_or_fails_closed(loaded: Any, given_facts: dict[str, Any]) -> None:
    try:
        decision: Decision | None = evaluate([loaded], given_facts)
    except PolicyError as exc:
        failure: PolicyError | None = exc
        decision = None
    else:
        failure = None
    if failure is not None:
        event("failed closed")
        assert failure.file == loaded.source, str(failure)
        assert failure.policy == loaded.policy.name, str(failure)
        assert failure.rule in {rule.id for rule in loaded.policy.rules}, str(failure)
        return
    assert decision is not None
    event(f"decided {decision.outcome}")
    assert decision.reasons
    assert all(r.policy in (loaded.policy.name, "-") for r in decision.reasons)
