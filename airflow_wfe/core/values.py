"""Plain values from whatever Airflow hands over, for facts that policies and decisions read.

Params, conf and step declarations arrive as Airflow's own mappings, tuples, proxies, dates or enums;
policies (CEL) and recorded decisions want JSON-like values. One conversion serves the gates' facts
and the pre-flight's, so a fact reads the same at a run's start and at a gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["plain"]


def plain(value: Any) -> Any:
    """Mappings with string keys, lists, and ``None``/bool/int/float/str; anything else as text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
