"""Canonical JSON: the one byte form of an audit event that its hash and signatures cover.

Keys sorted, no insignificant whitespace, UTF-8 (no ``\\u`` escapes for non-ASCII), NaN and infinity
refused, times as ISO 8601 UTC with microseconds and a ``Z``. The writer produces it once and stores
it; verification hashes the stored text as is, so it never depends on re-serialising the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from json.encoder import encode_basestring
from typing import Any

__all__ = ["canonical_json", "format_time", "jsonable"]

#: Exact types that are already JSON as they are: checked first, because events are mostly made of
#: them and the general checks below cost several times more per value.
_PLAIN = frozenset({str, int, bool, type(None)})


def format_time(value: datetime) -> str:
    """A UTC timestamp in the fixed-width form stored in events (sorts as text, parses back)."""
    if value.tzinfo is UTC and type(value) is datetime and value.year >= 1000:
        # The common case (datetime.now(UTC)): the same text without a copy of the value.
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
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


def _c_encoder() -> Callable[[Any, int], Sequence[str]] | None:
    """The C half of ``_encode``, built once: ``JSONEncoder.encode`` builds it again on every call
    (with a dict for circular checks), which cost as much as encoding a small event. The same
    options (and the same text: a test compares them); no circular check, which :func:`jsonable`
    would never finish first anyway. ``None`` where the C accelerator is missing."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    encoder: Callable[[Any, int], Sequence[str]] = make(
        None, None, encode_basestring, None, ":", ",", True, False, False
    )
    return encoder


_encode_c = _c_encoder()


def canonical_json(value: Any) -> str:
    """The canonical text of ``value`` (already :func:`jsonable`, or made so here)."""
    data = jsonable(value)
    if _encode_c is None or type(data) is str:
        return _encode(data)
    return "".join(_encode_c(data, 0))
