"""The append's hand-written fast paths produce exactly the bytes of the general code.

Every byte of an event body and of a signed message is covered by a hash or a signature, so a fast
path that differs in one byte would write chains that no longer verify (or old chains that no longer
match). Each fast path is compared here with the general form it replaces, on the values events
carry and on the awkward ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any

import pytest

from airflow_wfe.core.audit.canonical import canonical_json, format_time, jsonable
from airflow_wfe.core.audit.events import AuditEvent, SealedEvent, draft, header, seal_draft
from airflow_wfe.core.audit.partitions import MAIN, chain_name, signed_chain
from airflow_wfe.core.audit.signing import checkpoint_message, head_message
from airflow_wfe.core.audit.verify import Verifier


class Colour(Enum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: float


VALUES: list[Any] = [
    None,
    0,
    -7,
    True,
    "plain",
    'quotes " and \\ and \n and \u2028',
    "ünïcødé ✓ 🚀",
    1.5,
    1e300,
    float("nan"),
    float("inf"),
    [],
    {},
    (1, "two"),
    {"b": 1, "a": [1, {"z": None, "y": 2.25}], "é": "ü"},
    {3: "int key", "3x": 1},
    {"when": datetime(2026, 12, 6, 1, 2, 3, 4, tzinfo=UTC), "day": date(2026, 12, 6)},
    {"colour": Colour.RED, "level": Level.HIGH, "money": Decimal("1.10")},
    {"tags": {"b", "a"}, "frozen": frozenset({2, 1}), "point": Point(1, 2.5)},
    {"nested": {"deeper": {"deepest": [{"k": "v"}]}}},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_canonical_json_is_the_json_module_s_text(value: Any) -> None:
    expected = json.dumps(
        jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC),
        datetime(2026, 12, 6, 1, 2, 3, 7, tzinfo=UTC),
        datetime(2026, 12, 6, 3, 2, 3, 7, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 12, 6, 1, 2, 3),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
    ],
)
def test_format_time_is_strftime_in_utc(when: datetime) -> None:
    utc = when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    assert format_time(when) == utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


CHAINS = [MAIN, *(chain_name(n) for n in range(16)), 'odd"name']


@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("message", [head_message, checkpoint_message])
def test_signed_marks_are_their_canonical_json(message: Any, chain: str) -> None:
    domain = "head" if message is head_message else "checkpoint"
    at, hash_ = "2026-12-06T01:02:03.000004Z", "ab" * 32
    expected = canonical_json(
        {"chain": signed_chain(chain), "domain": domain, "seq": 41, "hash": hash_, "at": at}
    )
    assert message(41, hash_, at, chain) == expected.encode()


def _event(map_index: Any, payload: Any, versions: Any) -> AuditEvent:
    return AuditEvent(
        type="step.transition",
        actor="scheduler",
        at=datetime(2026, 12, 6, 1, 2, 3, 4, tzinfo=UTC),
        dag_id="etl",
        run_id="manual__1",
        step_id="t1",
        map_index=map_index,
        payload=payload,
        versions=versions,
    )


@pytest.mark.parametrize(
    ("map_index", "payload", "versions"),
    [
        (None, {}, {}),
        (-1, {"from_state": "RUNNING", "to_state": "SUCCEEDED"}, {"dag_version_id": "v1"}),
        (7, {"nested": {"b": [1, 2], "a": None}}, {"spec": None, "policy": "p"}),
        (True, {"x": 1}, {}),
        (Level.HIGH, {"colour": Colour.RED}, {"when": datetime(2026, 1, 1, tzinfo=UTC)}),
    ],
)
def test_drafted_rest_is_the_canonical_json_of_the_whole(
    map_index: Any, payload: Any, versions: Any
) -> None:
    made = draft(_event(map_index, payload, versions))
    kept = {k: v for k, v in versions.items() if v is not None}
    assert made.rest == canonical_json(
        {"map_index": map_index, "payload": payload, "versions": kept}
    )


def test_sealed_event_is_the_dataclass_s_own() -> None:
    made = draft(_event(-1, {"a": 1}, {"v": "1"}))
    sealed = seal_draft(made, 12, "cd" * 32, "p03")
    body = header(12, "cd" * 32, made.at, made.type, made.actor, "etl", "manual__1", "t1")
    expected = SealedEvent(
        seq=12,
        at=made.at,
        type=made.type,
        actor=made.actor,
        dag_id="etl",
        run_id="manual__1",
        step_id="t1",
        body=body + made.rest,
        prev_hash="cd" * 32,
        hash=sealed.hash,
        chain="p03",
    )
    assert sealed == expected
    assert hash(sealed) == hash(expected)
    assert repr(sealed) == repr(expected)
    assert dataclasses.asdict(sealed) == dataclasses.asdict(expected)
    assert sealed.hash == hashlib.sha256(expected.body.encode()).hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.seq = 13  # type: ignore[misc]


def _chain_rows(actors: list[str]) -> list[tuple[Any, ...]]:
    """Stored rows (ROW_COLUMNS) of a version-2 chain whose events carry ``actors`` in turn."""
    rows: list[tuple[Any, ...]] = []
    prev = "0" * 64
    for seq, actor in enumerate(actors, 1):
        event = AuditEvent(
            type="step.transition",
            actor=actor,
            at=datetime(2026, 12, 6, 1, 2, 3, seq, tzinfo=UTC),
            dag_id="etl",
            run_id="manual__1",
            step_id=None if seq % 3 == 0 else f"t{seq % 2}",
        )
        sealed = seal_draft(draft(event), seq, prev)
        rows.append(
            (seq, sealed.at, sealed.type, sealed.actor, sealed.dag_id, sealed.run_id,
             sealed.step_id, sealed.body, sealed.prev_hash, sealed.hash)
        )  # fmt: skip
        prev = sealed.hash
    return rows


def _findings(rows: list[tuple[Any, ...]]) -> list[tuple[int | None, str]]:
    verifier = Verifier(
        start_seq=1, prev_hash="0" * 64, checkpoints={}, keys=None, signatures=False
    )
    verifier.feed_rows(rows)
    return [(f.seq, f.kind) for f in verifier.report.findings]


def test_fast_verification_names_a_column_swapped_for_one_seen_before() -> None:
    """feed_rows keeps each combination of header columns it has quoted; a row whose columns were
    swapped for a combination seen earlier (so its header is found, not rebuilt) is still named."""
    actors = ["worker", "scheduler"] * 10
    rows = _chain_rows(actors)
    assert _findings(rows) == []
    victim = list(rows[11])
    victim[3] = rows[10][3]  # #12's actor column now says #11's actor (a cached combination)
    rows[11] = tuple(victim)
    assert _findings(rows) == [(12, "edited")]
