"""Which metric names a process sends: Airflow's ``[metrics]`` allow and block lists.

Shared by the StatsD and the OpenTelemetry emitters, so both drop the same names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_wfe.core.metrics.emitter import MetricsSettings

__all__ = ["name_filter"]


def name_filter(settings: MetricsSettings) -> Callable[[str], bool]:
    """Whether a name is sent: the allow list wins over the block list, as in Airflow."""

    # Airflow matches these regexes against the un-prefixed name; the allow list wins.
    def compile_list(raw: str) -> list[re.Pattern[str]]:
        return [re.compile(part.strip()) for part in raw.split(",") if part.strip()]

    allow = compile_list(settings.allow_list)
    block = compile_list(settings.block_list)
    if allow:
        return lambda name: any(p.match(name) for p in allow)
    if block:
        return lambda name: not any(p.match(name) for p in block)
    return lambda name: True
