"""Which targets each wave reaches."""

from __future__ import annotations

import pytest

from airflow_wfe.core.waves import plan_waves

HOSTS = [f"h{i}" for i in range(200)]


def test_shares_are_cumulative_and_every_wave_moves_on() -> None:
    plan = plan_waves(HOSTS, ["1%", "10%", "50%", "100%"])
    assert [len(w) for w in plan] == [2, 18, 80, 100]
    assert [t for w in plan for t in w] == HOSTS


def test_few_targets_still_go_one_wave_at_a_time() -> None:
    assert plan_waves(["a", "b", "c"], ["1%", "10%", "100%"]) == [["a"], ["b"], ["c"]]


def test_counts_and_a_plan_that_stops_short_gets_a_last_wave() -> None:
    assert plan_waves(["a", "b", "c", "d"], [1, 2]) == [["a"], ["b"], ["c", "d"]]


@pytest.mark.parametrize(
    ("targets", "waves", "message"),
    [
        ([], ["100%"], "at least one target"),
        (["a", "a"], ["100%"], "listed more than once: a"),
        (["a"], [], "at least one wave"),
        (["a", "b"], ["100%", "100%"], r"waves\[1\]: every target is reached"),
        (["a"], ["ten"], r"waves\[0\]: 'ten' is neither a share"),
        (["a"], ["150%"], "at most 100%"),
        (["a"], [0], "a count is 1 or more"),
        (["a"], [True], "neither a share"),
    ],
)
def test_bad_plans_are_refused_naming_the_wave(
    targets: list[str], waves: list[object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_waves(targets, waves)  # type: ignore[arg-type]
