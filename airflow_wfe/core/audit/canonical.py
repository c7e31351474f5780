"""Canonical JSON: the one byte form of an audit event that its hash and signatures cover.

Keys sorted, no insignificant whitespace, UTF-8 (no ``\\u`` escapes for non-ASCII), NaN and infinity
refused, times as ISO 8601 UTC with microseconds and a ``Z``. The writer produces it once and stores
it; verification hashes the stored text as is, so it never depends on re-serialising the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

__all__ = ["canonical_json", "format_time", "jsonable"]

#: Exact types that are already JSON as they are: checked first, because events are mostly made of
#: them and the general checks below cost several times more per value.
_PLAIN = frozenset({str, int, bool, type(None)})


def format_time(value: datetime) -> str:
    """A UTC timestamp in the fixed-width form stored in events (sorts as text, parses back)."""
    if value.tzinfo is None:
        utc = value
    elif value.tzinfo is UTC:
        utc = value.replace(tzinfo=None)
    else:
        utc = value.astimezone(UTC).replace(tzinfo=None)
    if utc.year < 1000 or type(utc) is not datetime:  # unpadded years, subclasses (pendulum)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), several times faster.
    return utc.isoformat(timespec="microseconds") + "Z"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: enums by value, times formatted, unknown objects as text."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    return str(value)


#: ``json.dumps`` with these options builds an encoder per call; one built once gives the same text.
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any) -> str:
    """The canonical text of ``value`` (already :func:`jsonable`, or made so here)."""
    return _encode(jsonable(value))
