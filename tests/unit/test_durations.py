"""One duration syntax for every key, flag and option: a bare number is seconds everywhere, and
``2w`` works wherever ``2d`` does (``--since 2w`` was refused where ``--window 2w`` worked, and a
bare ``7`` meant 7 seconds in a YAML key but 7 days in ``--window``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_wfe.app.audit import parse_since
from airflow_wfe.config import parse_window
from airflow_wfe.core.spec.models import parse_duration
from airflow_wfe.durations import parse_duration_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", timedelta(seconds=7)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("2w", timedelta(weeks=2)),
        ("1w 2d", timedelta(days=9)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_every_reader_agrees(text: str, expected: timedelta) -> None:
    assert parse_duration_text(text) == expected
    assert parse_duration(text) == expected
    assert parse_window(text) == expected
    since = parse_since(text)
    assert abs((datetime.now(UTC) - since) - expected) < timedelta(seconds=5)


@pytest.mark.parametrize("text", ["soon", "", "5 minutes", "2y", "-3d", "1e400", "nan", "d"])
def test_anything_else_is_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 30s, 5m, 1h30m, 2d, 2w"):
        parse_duration_text(text)


def test_a_window_must_be_longer_than_nothing() -> None:
    with pytest.raises(ValueError, match="longer than 0s"):
        parse_window("0s")
