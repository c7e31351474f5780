"""The one duration syntax of every workflow key, CLI flag, REST parameter and ``[wfe]`` option.

``90`` (a bare number is seconds everywhere, as Airflow's own timeouts are), ``90s``, ``5m``,
``1h30m``, ``2d``, ``2w``. It sits at the bottom of the layers so the configuration, the spec models
and every face read durations alike: a flag that took ``2w`` while another refused it, or a bare
``7`` that meant seconds in one place and days in another, is what this module exists to prevent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

__all__ = ["DURATION_HINT", "parse_duration_text", "parse_window"]

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION: Final = re.compile(
    rf"^(?:{_NUMBER}w)?(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?$"
)
_UNIT_SECONDS: Final = (7 * 86400, 86400, 3600, 60, 1)
DURATION_HINT: Final = "write e.g. 30s, 5m, 1h30m, 2d, 2w, or a number of seconds"


def parse_duration_text(text: str) -> timedelta:
    """A duration written as ``90``, ``90s``, ``5m``, ``1h30m``, ``2d`` or ``2w`` (bare: seconds).

    Raises:
        ValueError: anything else, or a value out of range, with the syntax in the message.
    """
    value = "".join(text.split()).lower()
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.match(value)
        if not value or match is None:
            raise ValueError(f"{text!r} is not a duration; {DURATION_HINT}") from None
        seconds = sum(
            float(part) * unit
            for part, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
            if part
        )
    if not 0 <= seconds < 1e12:  # NaN fails this too
        raise ValueError(f"{text!r} is out of range for a duration; {DURATION_HINT}")
    return timedelta(seconds=seconds)


def parse_window(text: str) -> timedelta:
    """A look-back window (``30d``, ``12h``, ``2w``...): a positive :func:`parse_duration_text`.

    Raises:
        ValueError: not a duration, or not longer than 0.
    """
    window = parse_duration_text(text)
    if window <= timedelta(0):
        raise ValueError(f"{text!r}: a window must be longer than 0s")
    return window
