"""The YAML loader: valid files load with lines and a stable hash; every kind of bad file becomes a
SpecError listing every problem with file, line and key path, never another exception."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml_mutations import mutated_documents

from airflow_wfe.core.spec.loader import LoadedSpec, load_spec, parse_spec
from airflow_wfe.core.spec.models import Backoff, ForEachFrom, OperatorSpec
from airflow_wfe.core.spec.problems import Problem
from airflow_wfe.exceptions import SpecError

# ``backoff`` is on line 14: the typo test below relies on it.
FULL = """\
# Deploy the service: build, canary, roll out, tell people.
name: deploy
version: "1.4"
owner: platform-team
description: Build, canary and roll out.
schedule: "@daily"
start_date: 2026-01-01
tags: [deploy, prod]
steps:
  build:
    run: ci.tasks:build
  canary:
    retry:
      backoff: fixed
      max_attempts: 3
      initial_delay: 30s
      max_delay: 5m
      non_retryable: [ValueError]
    run: ci.tasks:canary
    needs: [build]
    timeout: 10m
    compensate: ci.tasks:rollback_canary
    gate: {policies: [change-window], approval: true, timeout: 1h}
    cost: {fixed: 1.5}
  rollout:
    run:
      operator: airflow.providers.standard.operators.bash.BashOperator
      args: {bash_command: "echo rollout"}
    needs: [canary]
    side_effects: true
  notify:
    run: ci.tasks:notify
    for_each: {from: build}
    max_parallel: 2
    needs: [rollout]
budget: {currency: EUR, per_run: 10}
defaults:
  timeout: 30m
  pool: deploys
params: {region: eu-west-1}
policies: [no-friday-deploys]
"""

MINIMAL = """\
name: minimal
version: "1"
owner: me
steps:
  a:
    run: m:f
"""


def problems_of(text: str, file: str = "test.yaml") -> tuple[Problem, ...]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, file=file)
    assert info.value.file == file
    assert info.value.problems, "a SpecError must carry at least one problem"
    return info.value.problems


def only_problem(text: str, file: str = "test.yaml") -> Problem:
    problems = problems_of(text, file)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def line_number(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- valid files ------------------------------------------------------------------------------------


def test_full_example_loads_with_lines() -> None:
    loaded = parse_spec(FULL, file="deploy.yaml")
    spec = loaded.spec
    assert loaded.path == Path("deploy.yaml")
    assert list(spec.steps) == ["build", "canary", "rollout", "notify"]
    assert spec.steps["canary"].retry is not None
    assert spec.steps["canary"].retry.backoff is Backoff.FIXED
    assert spec.steps["canary"].retry.max_delay == timedelta(minutes=5)
    assert isinstance(spec.steps["rollout"].run, OperatorSpec)
    assert spec.steps["notify"].for_each == ForEachFrom(**{"from": "build"})
    assert len(loaded.content_hash) == 64
    assert loaded.line_of(("steps", "canary", "retry", "backoff")) == 14
    assert loaded.line_of(("steps", "canary", "needs", 0)) == 20
    # a missing key points at the mapping that would hold it
    assert loaded.line_of(("steps", "canary", "retry", "multiplier")) == 13
    assert loaded.line_of(("nope", "deeper")) == 2  # the top mapping starts after the comment


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(FULL, encoding="utf-8")
    loaded = load_spec(path)
    assert loaded.path == path
    assert loaded.content_hash == parse_spec(FULL).content_hash
    assert load_spec(str(path)).spec == loaded.spec


def test_hash_ignores_comments_whitespace_and_key_order() -> None:
    original = parse_spec(FULL).content_hash
    data = yaml.safe_load(FULL)
    reordered = yaml.safe_dump(data, sort_keys=True, default_flow_style=True)
    spaced = "\n# a comment\n\n" + FULL.replace(": ", ":    ").replace("\n", "   # note\n\n")
    assert parse_spec(reordered).content_hash == original
    assert parse_spec(spaced).content_hash == original
    # the hash is of the validated spec: the same duration written another way is the same spec
    assert (
        parse_spec(FULL.replace("initial_delay: 30s", "initial_delay: 30")).content_hash == original
    )


def test_hash_changes_with_a_value() -> None:
    original = parse_spec(FULL).content_hash
    assert (
        parse_spec(FULL.replace("initial_delay: 30s", "initial_delay: 31s")).content_hash
        != original
    )
    assert parse_spec(FULL.replace("per_run: 10", "per_run: 11")).content_hash != original


def test_merge_keys_and_aliases_are_supported() -> None:
    text = MINIMAL + "    retry: &r {max_attempts: 3}\n  b:\n    <<: {run: 'm:g'}\n    retry: *r\n"
    spec = parse_spec(text).spec
    assert spec.steps["b"].run == "m:g"
    assert spec.steps["b"].retry == spec.steps["a"].retry


def test_a_hundred_steps_load_quickly() -> None:
    lines = ["name: big", "version: '1'", "owner: team", "steps:"]
    for i in range(100):
        lines += [f"  s{i}:", f"    run: pkg.mod:fn{i}", "    retry: {max_attempts: 3}"]
        lines += [f"    needs: [s{i - 1}]" if i else "    needs: []", "    timeout: 5m"]
    text = "\n".join(lines)
    best = min(_timed(lambda: parse_spec(text)) for _ in range(5))
    assert best < 0.25  # a few ms on a quiet machine; generous for loaded CI


def _timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# --- unknown and missing keys -----------------------------------------------------------------------


def test_typo_in_retry_gives_the_documented_message() -> None:
    text = FULL.replace("      backoff: fixed", "      backof: fixed")
    problem = only_problem(text, "deploy.yaml")
    assert (
        str(problem)
        == "deploy.yaml:14: steps.canary.retry.backof: unknown key (did you mean 'backoff'?)"
    )
    assert problem.code == "unknown-key"
    assert problem.path == ("steps", "canary", "retry", "backof")


@pytest.mark.parametrize(
    ("old", "new", "path", "suggestion"),
    [
        ("steps:", "step:", ("step",), "steps"),
        ("    needs: [build]", "    need: [build]", ("steps", "canary", "need"), "needs"),
        (
            "for_each: {from: build}",
            "for_each: {frm: build}",
            ("steps", "notify", "for_each", "frm"),
            "from",
        ),
        ("      args: {bash", "      argz: {bash", ("steps", "rollout", "run", "argz"), "args"),
        ("budget: {currency", "budget: {curency", ("budget", "curency"), "currency"),
    ],
)
def test_unknown_key_suggests_the_allowed_key_of_that_model(
    old: str, new: str, path: tuple[str, ...], suggestion: str
) -> None:
    assert old in FULL
    text = FULL.replace(old, new)
    problems = problems_of(text)
    unknown = [p for p in problems if p.code == "unknown-key"]
    assert len(unknown) == 1, "\n".join(map(str, problems))
    assert unknown[0].path == path
    assert unknown[0].suggestion == f"did you mean '{suggestion}'?"
    assert unknown[0].line == line_number(text, f"{path[-1]}:")
    if path != ("step",):  # a misspelt required key is reported once, as the unknown key
        assert len(problems) == 1, "\n".join(map(str, problems))


def test_unknown_key_without_a_close_match_has_no_suggestion() -> None:
    problem = only_problem(MINIMAL + "    zzzzzz: 1\n")
    assert (problem.message, problem.suggestion, problem.line) == ("unknown key", None, 7)


def test_missing_owner_points_at_the_top_mapping() -> None:
    problem = only_problem(MINIMAL.replace("owner: me\n", ""))
    assert problem.code == "missing-key"
    assert problem.message == "missing required key 'owner'"
    assert problem.path == ("owner",)
    assert problem.line == 1


def test_missing_run_points_at_its_step() -> None:
    problem = only_problem(MINIMAL + "  b:\n    needs: [a]\n")
    assert (problem.code, problem.path, problem.line) == ("missing-key", ("steps", "b", "run"), 7)


# --- YAML-level problems ----------------------------------------------------------------------------


def test_duplicate_key_names_the_first_line() -> None:
    text = MINIMAL + "    needs: []\n    run: m:g\n"
    problem = only_problem(text)
    assert problem.code == "duplicate-key"
    assert problem.path == ("steps", "a", "run")
    assert problem.line == 8
    assert "duplicate key 'run'" in problem.message
    assert "first at line 6" in problem.message


def test_duplicate_step_id() -> None:
    problem = only_problem(MINIMAL + "  a:\n    run: m:g\n")
    assert (problem.code, problem.path, problem.line) == ("duplicate-key", ("steps", "a"), 7)


def test_yaml_syntax_error_has_its_line() -> None:
    text = MINIMAL + "  b:\n    run: [m:g\n  c:\n    run: m:h\n"
    problem = only_problem(text)
    assert problem.code == "yaml-syntax"
    assert problem.line == 9  # where the parser noticed; the message names where the list began
    assert problem.message.startswith("invalid YAML")
    assert "(while parsing a flow sequence, line 8)" in problem.message


def test_bad_indentation_is_a_syntax_error() -> None:
    problem = only_problem("name: x\n  version: 1\n owner: o\n")
    assert (problem.code, problem.line) == ("yaml-syntax", 2)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(text: str) -> None:
    problem = only_problem(text)
    assert problem.code == "empty"
    assert problem.line == 1


@pytest.mark.parametrize(("text", "found"), [("- a\n- b\n", "a list"), ("just text\n", "a string")])
def test_top_level_must_be_a_mapping(text: str, found: str) -> None:
    problem = only_problem(text)
    assert problem.code == "not-a-mapping"
    assert problem.message.endswith(f"found {found}")


def test_non_string_key_suggests_quoting() -> None:
    text = MINIMAL + "    args: {1: one}\n  on:\n    run: m:g\n"
    problems = problems_of(text)
    assert [(p.code, p.line) for p in problems] == [("non-string-key", 7), ("non-string-key", 8)]
    assert problems[0].message == "key 1 is read as a number, not a string"
    assert problems[0].suggestion == 'quote it: "1"'
    assert problems[1].message == "key on is read as a boolean, not a string"


def test_an_unreadable_date_is_one_problem() -> None:
    problem = only_problem(MINIMAL + "start_date: 2026-02-30\n")
    assert (problem.code, problem.path, problem.line) == ("invalid-value", ("start_date",), 7)
    assert "day is out of range" in problem.message


def test_alias_expansion_is_bounded() -> None:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for name, prev in zip("bcdefg", "abcdef", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    problem = only_problem("\n".join(lines))
    assert problem.code == "too-large"


def test_recursive_alias_is_a_problem() -> None:
    problems = problems_of(MINIMAL + "params: {x: &x [*x]}\n")
    assert [p.code for p in problems] == ["yaml-alias"]


@pytest.mark.parametrize(
    "text",
    [
        "name: !!python/object:os.system x\n",
        "a: !custom 1\n",
        "a: !!int twelve\n",
        "a: !!binary '@@'\nb: [\n",
        "params: {x: !!binary /w==}\n" + MINIMAL,
        "? [a, b]\n: c\n",
        "<<: 1\n",
        "a: \ud800\n",
        "a: b\x00c\n",
        "[" * 5000 + "]" * 5000,
        "a: 1\n---\nb: 2\n",
        MINIMAL + "    timeout: .inf\n",
    ],
)
def test_odd_yaml_is_a_located_spec_error(text: str) -> None:
    for problem in problems_of(text):
        assert problem.line is not None
        assert 1 <= problem.line <= max(1, len(text.splitlines()))


# --- values -----------------------------------------------------------------------------------------


def test_bad_duration() -> None:
    problem = only_problem(MINIMAL + "    timeout: 5 minutes\n")
    assert (problem.code, problem.path, problem.line) == (
        "invalid-value",
        ("steps", "a", "timeout"),
        7,
    )
    assert problem.message.startswith("'5 minutes' is not a duration")


def test_bad_run_gives_one_readable_problem() -> None:
    problem = only_problem(MINIMAL.replace("run: m:f", "run: 12"))
    assert problem.path == ("steps", "a", "run")
    assert problem.line == 6
    assert problem.message == 'expected "module:function" or {operator: ..., args: ...}, got 12'


def test_run_string_without_colon() -> None:
    problem = only_problem(MINIMAL.replace("run: m:f", "run: mf"))
    assert problem.path == ("steps", "a", "run")
    assert problem.message == "expected \"module:function\", got 'mf'"


def test_bad_for_each_gives_one_readable_problem() -> None:
    problem = only_problem(MINIMAL + "    for_each: 3\n")
    assert problem.message == "expected a list or {from: ...}, got 3"


def test_number_where_text_is_expected_suggests_quoting() -> None:
    problem = only_problem(MINIMAL.replace('version: "1"', "version: 1.10"))
    assert problem.path == ("version",)
    assert problem.message == "expected a string, got 1.1"
    assert problem.suggestion == 'quote it: "1.10"'


def test_enum_value_suggests_the_closest_choice() -> None:
    problem = only_problem(MINIMAL + "    retry: {backoff: exponentail}\n")
    assert problem.path == ("steps", "a", "retry", "backoff")
    assert problem.suggestion == "did you mean 'exponential'?"


def test_model_validator_message_is_kept_without_noise() -> None:
    problem = only_problem(MINIMAL + "    retry: {initial_delay: 5m, max_delay: 1m}\n")
    assert problem.message == "max_delay must not be shorter than initial_delay"
    assert problem.path == ("steps", "a", "retry")


def test_invalid_step_id() -> None:
    problem = only_problem(MINIMAL.replace("  a:", "  a b:"))
    assert problem.path == ("steps", "a b")
    assert (
        problem.message
        == "invalid key: expected an identifier (a letter, then letters, digits or _), got 'a b'"
    )


def test_out_of_range_duration_is_a_spec_error() -> None:
    problem = only_problem(MINIMAL + "    timeout: 99999999999999999999\n")
    assert problem.code == "invalid-value"


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    text = """\
name: deploy
version: 1.0
stepz: 1
steps:
  a:
    run: 12
    need: [b]
    timeout: 5 minutes
  a:
    run: m:f
  b:
    run: m:g
    run: m:h
    retry: {backof: fixed}
"""
    problems = problems_of(text)
    assert [(p.line, p.code) for p in problems] == [
        (1, "missing-key"),  # owner
        (2, "invalid-value"),  # version
        (3, "unknown-key"),  # stepz, did you mean steps
        (9, "duplicate-key"),  # a (the second a wins, so the first one's errors are not seen)
        (13, "duplicate-key"),  # run
        (14, "unknown-key"),  # backof
    ]
    assert all(p.file == "test.yaml" for p in problems)


# --- files ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    (problem,) = info.value.problems
    assert problem.message == "no such file"
    assert problem.file == str(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert "is a directory" in info.value.problems[0].message


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINIMAL.encode() + b"description: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems[0].line == 7


# --- property: nothing but SpecError, always located ------------------------------------------------

BASES: list[dict[str, Any]] = [
    yaml.safe_load(FULL),
    yaml.safe_load(MINIMAL),
    {
        "name": "fan.out-1",
        "version": "2",
        "owner": "data",
        "timeout": "1h30m",
        "defaults": {"retry": {"max_attempts": 2, "backoff": "exponential", "multiplier": 3}},
        "steps": {
            "list": {"run": "etl:list_files"},
            "each": {"run": "etl:load", "for_each": [1, "two", {"x": 3}], "max_parallel": 4},
            "undo": {"run": "etl:undo", "irreversible": True, "pool": "p", "pool_slots": 2},
        },
    },
]


def mutated_specs() -> st.SearchStrategy[str]:
    return mutated_documents(BASES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_any_mutation_gives_a_spec_or_located_problems(text: str) -> None:
    try:
        loaded = parse_spec(text, file="fuzz.yaml")
    except SpecError as exc:
        problems = exc.problems
    else:
        assert isinstance(loaded, LoadedSpec)
        assert len(loaded.content_hash) == 64
        return
    assert problems
    last_line = max(1, len(text.splitlines()))
    for problem in problems:
        assert problem.file == "fuzz.yaml"
        assert isinstance(problem.line, int), str(problem)
        assert 1 <= problem.line <= last_line, str(problem)
        assert problem.message


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(BASES), st.randoms(use_true_random=False), st.sampled_from([False, None, True])
)
def test_hash_ignores_key_order_and_layout(
    base: dict[str, Any], rnd: Any, flow: bool | None
) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            keys = list(value)
            rnd.shuffle(keys)
            return {key: shuffled(value[key]) for key in keys}
        return value

    text = yaml.safe_dump(shuffled(base), sort_keys=False, default_flow_style=flow)
    assert parse_spec(text).content_hash == parse_spec(yaml.safe_dump(base)).content_hash


def test_pure_python_parser_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml the loader falls back to PyYAML's own parser, with the same lines."""
    from airflow_wfe.core.spec import loader

    with_libyaml = parse_spec(FULL)
    typo = FULL.replace("      backoff: fixed", "      backof: fixed")
    expected = [str(p) for p in problems_of(typo)]
    # the loader module's own yaml: another test may have re-imported PyYAML under the same name
    monkeypatch.setattr(loader, "_YamlLoader", loader.yaml.SafeLoader)
    pure = parse_spec(FULL)
    assert pure.content_hash == with_libyaml.content_hash
    assert dict(pure.lines) == dict(with_libyaml.lines)
    assert [str(p) for p in problems_of(typo)] == expected
    assert only_problem("name: x\n  version: 1\n").code == "yaml-syntax"
    assert only_problem("a: b\x0b\n").line == 1
