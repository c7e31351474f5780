"""Blast-radius waves: which targets each wave of a rollout reaches.

A rollout reaches its targets in waves written as the share (``"10%"``) or the number (``25``) of
targets reached once the wave is done, cumulative and increasing: ``1%, 10%, 50%, 100%`` touches one
target in a hundred first, then grows. Every wave reaches at least one new target; targets keep their
order; a plan that stops short of every target ends with a wave for the rest (a rollout that silently
skipped targets would report success for machines it never touched).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Final

__all__ = ["MAX_TARGETS", "MAX_WAVES", "plan_waves"]

#: Targets one rollout may hold, and waves it may have: a bound on what the DAG file builds.
MAX_TARGETS: Final = 10_000
MAX_WAVES: Final = 100


def _reach(size: str | int, total: int, index: int) -> int:
    if isinstance(size, bool):
        raise ValueError(f"waves[{index}]: {size!r} is neither a share ('10%') nor a count")
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"waves[{index}]: a count is 1 or more, not {size}")
        return min(size, total)
    text = str(size).strip()
    if not text.endswith("%"):
        raise ValueError(f"waves[{index}]: {size!r} is neither a share ('10%') nor a count")
    try:
        share = float(text[:-1])
    except ValueError:
        raise ValueError(f"waves[{index}]: {size!r} is not a percentage") from None
    if not 0 < share <= 100:
        raise ValueError(f"waves[{index}]: a share is more than 0% and at most 100%, not {size!r}")
    return max(1, math.ceil(total * share / 100))


def plan_waves(targets: Sequence[str], waves: Sequence[str | int]) -> list[list[str]]:
    """The targets of each wave.

    Raises:
        ValueError: no or duplicate targets, too many, a size that is neither ``N%`` nor a count,
            or sizes that do not grow; the message names the wave.
    """
    if not targets:
        raise ValueError("a rollout needs at least one target")
    if len(targets) > MAX_TARGETS:
        raise ValueError(f"{len(targets):,} targets; a rollout holds at most {MAX_TARGETS:,}")
    duplicates = sorted(t for t, n in Counter(targets).items() if n > 1)
    if duplicates:
        raise ValueError(f"targets are listed more than once: {', '.join(duplicates[:5])}")
    if not waves:
        raise ValueError("a rollout needs at least one wave (e.g. ['10%', '100%'])")
    if len(waves) > MAX_WAVES:
        raise ValueError(f"{len(waves)} waves; a rollout has at most {MAX_WAVES}")
    plan: list[list[str]] = []
    reached = 0
    for index, size in enumerate(waves):
        upto = _reach(size, len(targets), index)
        if upto <= reached:
            if reached == len(targets):
                raise ValueError(f"waves[{index}]: every target is reached before this wave")
            upto = reached + 1  # a small share of few targets still moves the rollout on
        plan.append(list(targets[reached:upto]))
        reached = upto
    if reached < len(targets):
        plan.append(list(targets[reached:]))
    return plan
