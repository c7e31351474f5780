"""The local spool: facts a store refuses wait on disk, and are replayed once, in order, with their
original time and actor (real SQLite stores: one opened read-only, the same file writable)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine import spool
from airflow_wfe.engine.recorder import Recorder, SpoolPlace
from airflow_wfe.exceptions import SpoolError, SpoolFullError, StoreUnavailableError
from airflow_wfe.store import SqlStore


class _Counting(NullEmitter):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def incr(self, name: str, count: int = 1, *, tags: object = None) -> None:  # type: ignore[override]
        self.counts[name] = self.counts.get(name, 0) + count


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, str]:
    """(writable URL, read-only URL) of one SQLite file with the store's schema."""
    path = tmp_path / "wfe.db"
    writable = f"sqlite:///{path}"
    SqlStore(writable).count_runs()
    return writable, f"sqlite:///file:{path}?mode=ro&uri=true"


def _recorder(url: str, place: SpoolPlace, emitter: _Counting | None = None) -> Recorder:
    return Recorder(SqlStore(url), emitter or _Counting(), spool=place)


def _place(tmp_path: Path, max_bytes: int = 1 << 20) -> SpoolPlace:
    return SpoolPlace(tmp_path / "spool" / "host__key.jsonl", max_bytes, "sqlite:///wfe.db")


def _report(recorder: Recorder, at: datetime) -> None:
    recorder.run_started("d", "r", actor="scheduler", reason="go", at=at)
    for offset, state in enumerate((StepState.RUNNING, StepState.SUCCEEDED), start=1):
        recorder.step(
            "d",
            "r",
            "s",
            state,
            actor="worker",
            reason="task",
            try_number=1,
            at=at + timedelta(seconds=offset),
        )


def test_refused_facts_wait_and_replay_once_with_their_time_and_actor(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    writable, read_only = stores
    place = _place(tmp_path)
    emitter = _Counting()
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    _report(_recorder(read_only, place, emitter), at)
    assert emitter.counts["wfe.spool.written"] == 3
    assert [e["op"] for _, e in spool.entries(place.file)] == ["run_started", "step", "step"]

    replaying = _recorder(writable, place)
    spooled = place.file.read_bytes()
    result = replaying.flush_spool()
    assert (result.replayed, result.superseded, result.remaining) == (3, 0, 0)
    record = replaying.store.get_run("d", "r")
    assert record.state == "RUNNING"
    assert [(t.to_state, t.actor, t.at) for t in record.transitions] == [
        ("CREATED", "scheduler", at),
        ("VALIDATED", "scheduler", at),
        ("RUNNING", "scheduler", at),
    ]
    (step,) = record.steps
    assert [(t.to_state, t.actor) for t in step.transitions] == [
        ("PENDING", "worker"),
        ("RUNNING", "worker"),
        ("SUCCEEDED", "worker"),
    ]
    assert step.transitions[-1].at == at + timedelta(seconds=2)
    assert place.file.stat().st_size == 0  # emptied once replayed
    # A crash after the commits but before the file was emptied replays them again: no-op.
    place.file.write_bytes(spooled)
    spool._write_done(place.file, 0)
    again = replaying.flush_spool()
    assert again.remaining == 0
    assert len(replaying.store.get_run("d", "r").steps[0].transitions) == 3
    events = [e for e in replaying.store.audit_events(dag_id="d") if e.type.endswith("transition")]
    assert len(events) == 6  # one audit event per transition, replays included once


def test_a_fact_the_store_moved_past_is_superseded_not_refused(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    writable, read_only = stores
    place = _place(tmp_path)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    _report(_recorder(read_only, place), at)
    direct = Recorder(SqlStore(writable), _Counting())  # another host, no spool: wrote later
    direct.run_started("d", "r", actor="scheduler", reason="go")
    direct.reconcile_step("d", "r", "s", StepState.FAILED, actor="scheduler", reason="run end")
    result = _recorder(writable, place).flush_spool()
    assert (result.replayed, result.superseded, result.rejected) == (1, 2, 0)
    events = list(direct.store.audit_events(dag_id="d"))
    assert not [e for e in events if e.type == "transition.refused"]


def test_while_the_spool_is_recent_facts_join_it_without_trying_the_store(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    writable, read_only = stores
    place = _place(tmp_path)
    _recorder(read_only, place).run_started("d", "r", actor="scheduler", reason="go")
    # The store is fine again, but facts must not overtake the spooled one.
    healthy = _recorder(writable, place)
    healthy.step("d", "r", "s", StepState.RUNNING, actor="worker", try_number=1)
    assert spool.count_pending(place.file) == 2
    assert healthy.recorded_step_states("d", "r") == {}


def test_fail_closed_raises_instead_of_spooling(stores: tuple[str, str], tmp_path: Path) -> None:
    _, read_only = stores
    place = _place(tmp_path)
    recorder = Recorder(SqlStore(read_only), _Counting(), spool=place, fail_closed=True)
    with pytest.raises(StoreUnavailableError, match=r"readonly|read-only"):
        recorder.run_started("d", "r", actor="scheduler", reason="go")
    assert not place.file.exists()


def test_a_full_spool_says_so_and_counts_it(stores: tuple[str, str], tmp_path: Path) -> None:
    _, read_only = stores
    place = _place(tmp_path, max_bytes=200)
    emitter = _Counting()
    with pytest.raises(SpoolFullError, match=r"spool_max_mb.*wfe spool flush"):
        _recorder(read_only, place, emitter).run_started("d", "r", actor="s", reason="go")
    assert emitter.counts["wfe.spool.full"] == 1


def test_a_torn_last_line_is_skipped_and_a_corrupt_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "host__key.jsonl"
    at = datetime(2026, 12, 1, tzinfo=UTC)
    spool.append(path, op="step", at=at, args={"dag_id": "d"}, store="s", max_bytes=10_000)
    with path.open("ab") as handle:
        handle.write(b'{"v": 1, "op": "st')  # a crash mid-write
    assert len(list(spool.entries(path))) == 1
    with path.open("ab") as handle:
        handle.write(b"\nnot json\n")
    with pytest.raises(SpoolError, match=r"host__key.jsonl:2: not a JSON line"):
        list(spool.entries(path))


def test_status_lists_files_and_runs(stores: tuple[str, str], tmp_path: Path) -> None:
    _, read_only = stores
    place = _place(tmp_path)
    _report(_recorder(read_only, place), datetime(2026, 12, 1, tzinfo=UTC))
    (found,) = spool.status(place.file.parent)
    assert (found.host, found.pending, found.runs) == ("host", 3, {"d/r": 3})
    line = json.loads(place.file.read_text().splitlines()[0])
    assert line["at"] == "2026-12-01T00:00:00+00:00"


def test_runs_show_says_what_is_still_spooled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_wfe.cli.main import main
    from airflow_wfe.engine.harness import get_recorder, reset_runtime, spool_place

    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{tmp_path}/wfe.db")
    monkeypatch.setenv("AIRFLOW__WFE__SPOOL_PATH", str(tmp_path / "spool"))
    monkeypatch.setenv("AIRFLOW__WFE__AUDIT_SIGNING_KEY", "spool-test-key-0123456789")
    reset_runtime()
    try:
        get_recorder().run_started("d", "r", actor="scheduler", reason="go")
        capsys.readouterr()  # the recorder's own transition log line
        place = spool_place()
        at = datetime.now(UTC)
        for run_id in ("r", "r", "other"):
            args = {"dag_id": "d", "run_id": run_id, "actor": "worker", "reason": "x"}
            spool.append(
                place.file, op="run_started", at=at, args=args, store="s", max_bytes=1 << 20
            )
        assert main(["runs", "show", "d", "r", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["spooled"] == 2
        assert main(["runs", "show", "d", "r"]) == 0
        assert "2 transition(s) still spooled on this host" in capsys.readouterr().out
        assert main(["spool", "status", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["pending"] == 3
        assert status["files"][0]["current_store"] is True
        assert main(["spool", "flush", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["remaining"] == 0
        assert main(["runs", "show", "d", "r", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["spooled"] == 0
    finally:
        reset_runtime()
