"""Canary analysis: does the canary behave worse than the baseline, or than a plain limit?

Per metric (error rate, latency, CTR, CPA ...), from samples of the canary and of the baseline:

* fewer samples than ``min_samples`` on either side: **hold** (wait and look again);
* the canary's mean past ``limit`` (above it when lower is better, below it when higher is better):
  **rollback**;
* a one-sided Mann-Whitney U test says the canary is worse (p below ``alpha``) **and** the
  difference of means is larger than ``tolerance`` (relative to the baseline): **rollback**. The
  effect-size tolerance is what keeps a noisy but equal canary from being rolled back: with
  enough samples a test finds any difference significant, however small;
* otherwise **promote**.

The verdict of several metrics is the worst of theirs (rollback, then hold, then promote). Every
verdict carries what it was decided on: both samples' size, mean and median, the test, its
statistic and p-value, and the thresholds. SciPy is imported only when a test runs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from airflow_wfe.exceptions import MissingExtraError, PolicyError

__all__ = [
    "MAX_SAMPLES",
    "CanaryMetric",
    "Direction",
    "MetricVerdict",
    "Summary",
    "Verdict",
    "judge",
    "overall",
]

#: Samples per side a check reads: far beyond what a canary needs, a bound on hostile sources.
MAX_SAMPLES: Final = 100_000
_EPSILON: Final = 1e-12


class Direction(StrEnum):
    """Which way is better for a metric."""

    LOWER = "lower_is_better"  # error rate, latency, CPA
    HIGHER = "higher_is_better"  # CTR, conversion, throughput


class Verdict(StrEnum):
    """What to do with the canary."""

    PROMOTE = "promote"
    HOLD = "hold"
    ROLLBACK = "rollback"


_RANK: Final = {Verdict.PROMOTE: 0, Verdict.HOLD: 1, Verdict.ROLLBACK: 2}


@dataclass(frozen=True)
class CanaryMetric:
    """One metric to judge the canary by.

    Attributes:
        name: what it is called in decisions (``error_rate``).
        direction: which way is better.
        limit: the worst acceptable canary mean, on its own (``None``: no plain limit).
        tolerance: the relative worsening of the mean tolerated before a significant test counts
            (0.1: the canary may be 10% worse than the baseline).
        alpha: the test's significance level.
        min_samples: samples needed on each side before anything but "hold" is decided.
    """

    name: str
    direction: Direction = Direction.LOWER
    limit: float | None = None
    tolerance: float = 0.1
    alpha: float = 0.05
    min_samples: int = 30

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a canary metric needs a name")
        if not 0 < self.alpha < 1:
            raise ValueError(f"metric {self.name!r}: alpha must be between 0 and 1")
        if self.tolerance < 0 or self.min_samples < 1:
            raise ValueError(f"metric {self.name!r}: tolerance >= 0 and min_samples >= 1")
        if self.limit is not None and not math.isfinite(self.limit):
            raise ValueError(f"metric {self.name!r}: limit must be a finite number")


@dataclass(frozen=True)
class Summary:
    """A sample's size, mean and median (what a decision shows of it)."""

    n: int
    mean: float | None
    median: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls(0, None, None)
        return cls(len(values), statistics.fmean(values), statistics.median(values))

    def text(self) -> str:
        if self.mean is None or self.median is None:
            return "no samples"
        return f"n={self.n}, mean {self.mean:.4g}, median {self.median:.4g}"


@dataclass(frozen=True)
class MetricVerdict:
    """The verdict on one metric and everything it was decided on."""

    metric: CanaryMetric
    verdict: Verdict
    reason: str
    canary: Summary
    baseline: Summary | None
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None

    @property
    def message(self) -> str:
        return f"{self.metric.name}: {self.verdict.value}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The figures a recorded decision keeps."""
        return {
            "metric": self.metric.name,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "direction": self.metric.direction.value,
            "canary": self.canary.__dict__,
            "baseline": None if self.baseline is None else self.baseline.__dict__,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "limit": self.metric.limit,
            "tolerance": self.metric.tolerance,
            "alpha": self.metric.alpha,
            "min_samples": self.metric.min_samples,
        }


def _clean(values: Iterable[Any], metric: str, side: str) -> list[float]:
    """Finite floats, or a PolicyError naming the metric and side (a gate fails closed on it)."""
    cleaned: list[float] = []
    for index, value in enumerate(values):
        if index >= MAX_SAMPLES:
            raise PolicyError(
                f"canary metric {metric!r}", f"more than {MAX_SAMPLES:,} {side} samples"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PolicyError(
                f"canary metric {metric!r}",
                f"{side} sample #{index} is not a number: {value!r:.40}",
            ) from None
        if not math.isfinite(number):
            raise PolicyError(
                f"canary metric {metric!r}", f"{side} sample #{index} is {number} (not finite)"
            )
        cleaned.append(number)
    return cleaned


def judge(
    metric: CanaryMetric, canary: Iterable[Any], baseline: Iterable[Any] | None = None
) -> MetricVerdict:
    """The verdict on one metric (see the module's docstring for the rules).

    Raises:
        PolicyError: a sample is not a finite number, or there are too many.
    """
    ours = _clean(canary, metric.name, "canary")
    theirs = None if baseline is None else _clean(baseline, metric.name, "baseline")
    mine, base = Summary.of(ours), None if theirs is None else Summary.of(theirs)
    short = [
        f"{side} has {len(values)} of {metric.min_samples} samples"
        for side, values in (("canary", ours), ("baseline", theirs))
        if values is not None and len(values) < metric.min_samples
    ]
    if short:
        return MetricVerdict(metric, Verdict.HOLD, "; ".join(short), mine, base)
    assert mine.mean is not None
    lower = metric.direction is Direction.LOWER
    if metric.limit is not None and (
        mine.mean > metric.limit if lower else mine.mean < metric.limit
    ):
        side = "above" if lower else "below"
        reason = (
            f"canary mean {mine.mean:.4g} is {side} the limit {metric.limit:.4g} ({mine.text()})"
        )
        return MetricVerdict(metric, Verdict.ROLLBACK, reason, mine, base)
    if theirs is None or base is None or base.mean is None:
        reason = f"within the limit ({mine.text()})"
        return MetricVerdict(metric, Verdict.PROMOTE, reason, mine, base)
    try:  # only a canary check with a baseline pays for SciPy
        from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtraError("canary gate's statistical test", "canary", str(exc)) from None

    result = mannwhitneyu(ours, theirs, alternative="greater" if lower else "less")
    statistic, p_value = float(result.statistic), float(result.pvalue)
    worse_by = (mine.mean - base.mean) if lower else (base.mean - mine.mean)
    relative = worse_by / max(abs(base.mean), _EPSILON)
    figures = f"canary {mine.text()}; baseline {base.text()}; Mann-Whitney U p={p_value:.3g}"
    test = "mann-whitney-u (one-sided)"
    if p_value < metric.alpha and relative > metric.tolerance:
        reason = f"worse than the baseline by {relative:.1%} (tolerance {metric.tolerance:.0%}): {figures}"
        verdict = Verdict.ROLLBACK
    elif p_value < metric.alpha:
        reason = (
            f"a significant difference of {relative:.1%}, within the tolerance "
            f"{metric.tolerance:.0%}: {figures}"
        )
        verdict = Verdict.PROMOTE
    else:
        reason = f"not worse than the baseline: {figures}"
        verdict = Verdict.PROMOTE
    return MetricVerdict(metric, verdict, reason, mine, base, test, statistic, p_value)


def overall(verdicts: Sequence[MetricVerdict]) -> Verdict:
    """The worst verdict of the metrics: one rollback rolls back, one hold holds."""
    return max((v.verdict for v in verdicts), key=_RANK.__getitem__, default=Verdict.PROMOTE)
