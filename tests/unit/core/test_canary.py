"""Canary verdicts on real samples (seeded, so every run sees the same numbers)."""

from __future__ import annotations

import random

import pytest

from airflow_wfe.core.canary import CanaryMetric, Direction, Verdict, judge, overall
from airflow_wfe.exceptions import PolicyError


def _samples(mean: float, spread: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [max(0.0, rng.gauss(mean, spread)) for _ in range(n)]


ERRORS = CanaryMetric("error_rate", Direction.LOWER, limit=0.2, tolerance=0.1)


def test_a_canary_clearly_worse_than_its_baseline_rolls_back() -> None:
    verdict = judge(ERRORS, _samples(0.08, 0.02, 200, 1), _samples(0.02, 0.02, 200, 2))
    assert verdict.verdict is Verdict.ROLLBACK
    assert verdict.p_value is not None
    assert verdict.p_value < 0.001
    assert "worse than the baseline by" in verdict.reason
    assert verdict.to_dict()["baseline"]["n"] == 200


def test_a_noisy_but_equal_canary_is_not_rolled_back() -> None:
    canary = _samples(0.05, 0.04, 5_000, 3)
    baseline = _samples(0.05, 0.04, 5_000, 4)
    verdict = judge(ERRORS, canary, baseline)
    assert verdict.verdict is Verdict.PROMOTE


def test_a_tiny_but_significant_difference_stays_within_the_tolerance() -> None:
    canary = _samples(0.0515, 0.01, 20_000, 5)
    baseline = _samples(0.05, 0.01, 20_000, 6)
    verdict = judge(ERRORS, canary, baseline)
    assert verdict.p_value is not None
    assert verdict.p_value < 0.05
    assert verdict.verdict is Verdict.PROMOTE
    assert "within the tolerance 10%" in verdict.reason


def test_too_few_samples_hold_then_enough_decide() -> None:
    few = judge(ERRORS, _samples(0.5, 0.01, 10, 7), _samples(0.02, 0.01, 100, 8))
    assert few.verdict is Verdict.HOLD
    assert few.reason == "canary has 10 of 30 samples"
    assert judge(ERRORS, _samples(0.5, 0.01, 40, 7)).verdict is Verdict.ROLLBACK


def test_a_plain_limit_without_a_baseline_and_the_higher_is_better_side() -> None:
    ctr = CanaryMetric("ctr", Direction.HIGHER, limit=0.02, min_samples=5)
    assert judge(ctr, [0.01] * 10).verdict is Verdict.ROLLBACK
    assert judge(ctr, [0.03] * 10).verdict is Verdict.PROMOTE
    worse = judge(ctr, _samples(0.03, 0.002, 100, 9), _samples(0.05, 0.002, 100, 10))
    assert worse.verdict is Verdict.ROLLBACK


def test_the_worst_verdict_wins() -> None:
    promote = judge(ERRORS, [0.01] * 40)
    hold = judge(ERRORS, [0.01])
    rollback = judge(ERRORS, [0.9] * 40)
    assert overall([promote, hold]) is Verdict.HOLD
    assert overall([promote, hold, rollback]) is Verdict.ROLLBACK
    assert overall([]) is Verdict.PROMOTE


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "x", None])
def test_a_sample_that_is_not_a_finite_number_fails_closed(bad: object) -> None:
    with pytest.raises(PolicyError, match="canary sample #1"):
        judge(ERRORS, [0.1, bad, 0.2])
