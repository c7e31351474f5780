"""The versioned-artifact registry on SQLite and PostgreSQL, its task helper and its CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, insert, select

from airflow_wfe.adapters.task.artifacts import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactRegistry,
    version_for,
)
from airflow_wfe.cli.artifacts import add_artifact_commands
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import RunNotFoundError, WfeError
from airflow_wfe.store import SqlStore
from airflow_wfe.store.artifacts import to_jsonable
from airflow_wfe.store.tables import artifact_activation_table, artifact_table, run_artifact_table

A, B, C, D, E = (f"content {letter}\n".encode() for letter in "ABCDE")


@pytest.fixture
def registry(store: SqlStore) -> ArtifactRegistry:
    return store.artifacts


def start_run(store: SqlStore, dag_id: str, run_id: str) -> None:
    Recorder(store, NullEmitter()).run_started(dag_id, run_id, actor="worker", reason="x")


def count(store: SqlStore, table: Any) -> int:
    with store._engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def activate_all(registry: ArtifactRegistry, name: str, *contents: bytes) -> list[str]:
    versions = []
    for content in contents:
        version = registry.register(name, content, actor="alice").version
        registry.activate(name, version, actor="alice")
        versions.append(version)
    return versions


# -- registering -------------------------------------------------------------------------------


def test_versions_are_content_hashes_and_registering_is_idempotent(
    registry: ArtifactRegistry, store: SqlStore
) -> None:
    first = registry.register("prompts/summary", A, actor="alice")
    digest = hashlib.sha256(A).hexdigest()
    assert first.version == digest[:12] == version_for(A)
    assert first.content_hash == digest
    assert (first.content, first.size, first.media_type, first.created_by) == (
        A,
        len(A),
        "text/plain",
        "alice",
    )
    assert first.created_at.utcoffset() == timedelta(0)

    again = registry.register("prompts/summary", A, media_type="text/markdown", actor="bob")
    # The first registration stands: same version, same provenance, no new row.
    assert again == first
    assert count(store, artifact_table) == 1

    other = registry.register("prompts/summary", B, actor="bob")
    assert other.version == version_for(B) != first.version
    # The same content under another name is another artifact.
    assert registry.register("prompts/other", A, actor="bob").version == first.version
    assert count(store, artifact_table) == 3
    assert registry.get("prompts/summary", first.version).content == A


def test_binary_and_empty_content_round_trip(registry: ArtifactRegistry) -> None:
    blob = bytes(range(256)) * 3
    for content in (blob, b""):
        version = registry.register("creative.png", content, media_type="image/png", actor="a")
        stored = registry.get("creative.png", version.version)
        assert stored.content == content
        assert stored.size == len(content)
        assert stored.media_type == "image/png"


@pytest.mark.parametrize(
    "name",
    ["", "/abs", "-dash", ".hidden", "with space", "new\nline", "trailing\n", "é", "x" * 251],
)
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    registry = SqlStore(f"sqlite:///{tmp_path}/wfe.db").artifacts
    with pytest.raises(ArtifactError, match="not a valid name") as info:
        registry.register(name, A, actor="a")
    assert isinstance(info.value, WfeError)
    assert info.value.name == name


@pytest.mark.parametrize("name", ["p", "prompts/summary.v1", "A-b_c/9", "x" * 250])
def test_good_names_are_accepted(tmp_path: Path, name: str) -> None:
    registry = SqlStore(f"sqlite:///{tmp_path}/wfe.db").artifacts
    assert registry.register(name, A, actor="a").name == name


@pytest.mark.parametrize("media_type", ["", "x" * 101, "text/plain\n"])
def test_bad_media_types_are_refused(tmp_path: Path, media_type: str) -> None:
    registry = SqlStore(f"sqlite:///{tmp_path}/wfe.db").artifacts
    with pytest.raises(ArtifactError, match="media type"):
        registry.register("p", A, media_type=media_type, actor="a")


def test_get_unknown_name_or_version(registry: ArtifactRegistry) -> None:
    with pytest.raises(ArtifactNotFoundError, match="no such artifact") as info:
        registry.get("nope", "123456789abc")
    assert (info.value.name, info.value.version) == ("nope", "123456789abc")
    known = registry.register("p", A, actor="a").version
    with pytest.raises(ArtifactNotFoundError) as info:
        registry.get("p", "123456789abc")
    assert info.value.version == "123456789abc"
    assert f"known: {known}" in str(info.value)


# -- activating and rolling back ---------------------------------------------------------------


def test_activate_and_active(registry: ArtifactRegistry, store: SqlStore) -> None:
    a = registry.register("p", A, actor="alice")
    b = registry.register("p", B, actor="alice")
    with pytest.raises(ArtifactNotFoundError, match="no version is active yet") as info:
        registry.active("p")
    assert info.value.version is None
    assert b.version in str(info.value)

    activated = registry.activate("p", a.version, actor="bob", reason="first cut")
    assert (activated.version, activated.content) == (a.version, A)
    assert registry.active("p").content == A
    registry.activate("p", b.version, actor="bob")
    assert registry.active("p").version == b.version
    assert registry.active("p").content == B

    # Activating the active version again is a no-op, not a new history entry.
    registry.activate("p", b.version, actor="carol", reason="again")
    assert count(store, artifact_activation_table) == 2

    with pytest.raises(ArtifactNotFoundError) as missing:
        registry.activate("p", "000000000000", actor="bob")
    assert missing.value.version == "000000000000"
    with pytest.raises(ArtifactNotFoundError, match="no such artifact"):
        registry.activate("nope", a.version, actor="bob")
    with pytest.raises(ArtifactNotFoundError, match="no such artifact"):
        registry.active("nope")
    assert count(store, artifact_activation_table) == 2


def test_rollback_walks_back_one_activation_at_a_time(registry: ArtifactRegistry) -> None:
    a, b, c = activate_all(registry, "p", A, B, C)

    back = registry.rollback("p", actor="oncall", reason="bad output")
    assert (back.version, back.content) == (b, B)
    assert registry.active("p").version == b
    assert registry.rollback("p", actor="oncall").version == a
    assert registry.active("p").content == A

    with pytest.raises(ArtifactError, match="nothing to roll back to") as info:
        registry.rollback("p", actor="oncall")
    assert not isinstance(info.value, ArtifactNotFoundError)
    assert a in str(info.value)
    assert registry.active("p").version == a

    history = registry.history("p")
    assert [x.version for x in history.activations] == [a, b, c, b, a]
    assert [x.reason for x in history.activations[3:]] == [
        f"rollback from {c}: bad output",
        f"rollback from {b}",
    ]
    assert history.activations[-1].actor == "oncall"


def test_rollback_after_new_activation_goes_to_the_previous_one(
    registry: ArtifactRegistry,
) -> None:
    a, b, c = activate_all(registry, "p", A, B, C)
    assert registry.rollback("p", actor="x").version == b
    # A new activation after a rollback: rolling back returns to where we were.
    registry.activate("p", c, actor="x")
    assert registry.rollback("p", actor="x").version == b
    assert registry.rollback("p", actor="x").version == a

    # Activating an older version that was not the previous one is a new step forward.
    q = activate_all(registry, "q", A, B, C)
    registry.activate("q", q[0], actor="x")
    assert registry.rollback("q", actor="x").version == q[2]
    assert registry.rollback("q", actor="x").version == q[1]


def test_activating_the_previous_version_by_hand_counts_as_a_rollback(
    registry: ArtifactRegistry,
) -> None:
    a, b = activate_all(registry, "p", A, B)
    registry.activate("p", a, actor="x")
    c = activate_all(registry, "p", C)[0]
    assert registry.active("p").version == c
    assert registry.rollback("p", actor="x").version == a
    with pytest.raises(ArtifactError, match="nothing to roll back to"):
        registry.rollback("p", actor="x")
    assert b  # registered, but popped off the history by the hand-made rollback


def test_rollback_without_activations_or_artifact(registry: ArtifactRegistry) -> None:
    with pytest.raises(ArtifactNotFoundError, match="no such artifact"):
        registry.rollback("nope", actor="x")
    registry.register("p", A, actor="x")
    with pytest.raises(ArtifactNotFoundError, match="no version is active yet"):
        registry.rollback("p", actor="x")


# -- reading -----------------------------------------------------------------------------------


def test_history_lists_versions_oldest_first_and_activations_in_order(
    registry: ArtifactRegistry,
) -> None:
    a = registry.register("p", A, media_type="text/markdown", actor="alice")
    b = registry.register("p", B + B, actor="bob")
    registry.activate("p", b.version, actor="carol", reason="try b")
    registry.activate("p", a.version, actor="dave")

    history = registry.history("p")
    assert history.name == "p"
    assert history.active_version == a.version
    assert [
        (v.version, v.created_by, v.size, v.media_type, v.content) for v in history.versions
    ] == [
        (a.version, "alice", len(A), "text/markdown", None),
        (b.version, "bob", 2 * len(B), "text/plain", None),
    ]
    assert [(x.version, x.actor, x.reason) for x in history.activations] == [
        (b.version, "carol", "try b"),
        (a.version, "dave", None),
    ]
    stamps = [v.created_at for v in history.versions] + [x.at for x in history.activations]
    assert all(s.utcoffset() == timedelta(0) for s in stamps)
    assert stamps == sorted(stamps)

    data = json.loads(json.dumps(to_jsonable(history)))
    assert data["active_version"] == a.version
    assert "content" not in data["versions"][0]
    assert data["activations"][0]["reason"] == "try b"
    assert data["activations"][0]["at"].endswith("+00:00")

    with pytest.raises(ArtifactNotFoundError):
        registry.history("nope")


def test_list_summarises_every_artifact_by_name(registry: ArtifactRegistry) -> None:
    assert registry.list() == []
    registry.register("zeta", A, actor="x")
    activate_all(registry, "alpha", A, B)
    listed = registry.list()
    assert [(s.name, s.version_count) for s in listed] == [("alpha", 2), ("zeta", 1)]
    assert listed[0].active_version == version_for(B)
    assert listed[0].last_activated_at == registry.history("alpha").activations[-1].at
    assert (listed[1].active_version, listed[1].last_activated_at) == (None, None)
    assert json.loads(json.dumps(to_jsonable(listed)))[1]["active_version"] is None


# -- runs using artifacts ----------------------------------------------------------------------


def test_record_use_requires_a_run_and_is_idempotent(
    registry: ArtifactRegistry, store: SqlStore
) -> None:
    a = registry.register("p", A, actor="x").version
    with pytest.raises(RunNotFoundError):
        registry.record_use("d", "r", "p", a)
    assert count(store, run_artifact_table) == 0

    start_run(store, "d", "r")
    registry.record_use("d", "r", "p", a)
    registry.record_use("d", "r", "p", a)
    assert count(store, run_artifact_table) == 1
    with pytest.raises(ArtifactNotFoundError):
        registry.record_use("d", "r", "p", "000000000000")
    with pytest.raises(ArtifactNotFoundError):
        registry.record_use("d", "r", "nope", a)


def test_runs_using(registry: ArtifactRegistry, store: SqlStore) -> None:
    a, b = activate_all(registry, "p", A, B)
    registry.register("unused", C, actor="x")
    for run_id in ("r1", "r2", "r3"):
        start_run(store, "d", run_id)
    registry.record_use("d", "r1", "p", a)
    registry.record_use("d", "r2", "p", b)
    registry.record_use("d", "r3", "p", b)
    registry.record_use("d", "r3", "p", a)

    uses = registry.runs_using("p")
    assert [(u.dag_id, u.run_id, u.version) for u in uses] == [
        ("d", "r1", a),
        ("d", "r2", b),
        ("d", "r3", b),
        ("d", "r3", a),
    ]
    assert all(u.used_at.utcoffset() == timedelta(0) for u in uses)
    assert [u.run_id for u in registry.runs_using("p", b)] == ["r2", "r3"]
    assert registry.runs_using("unused") == []
    with pytest.raises(ArtifactNotFoundError):
        registry.runs_using("nope")
    with pytest.raises(ArtifactNotFoundError):
        registry.runs_using("p", "000000000000")


# -- concurrency -------------------------------------------------------------------------------


def _worker(job: str, url: str, barrier: Any, results: Any, index: int) -> None:
    """One racing process: report the version it got, or its error, so the test never hangs."""
    try:
        registry = SqlStore(url).artifacts
        registry._store._engine  # noqa: B018 - connect before the race, not during it
        barrier.wait(timeout=60)
        if job == "register":
            version = registry.register("shared", A, actor=f"worker-{index}")
        else:
            version = registry.rollback("shared", actor=f"worker-{index}")
        results.put(("ok", version.version))
    except BaseException as exc:
        barrier.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _run_workers(url: str, job: str, workers: int = 4) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(job, url, barrier, results, index))
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors, errors
    return [detail for _status, detail in outcomes]


@pytest.mark.slow
def test_concurrent_registration_of_the_same_content_stores_one_row(
    url: str, store: SqlStore
) -> None:
    store._engine  # noqa: B018 - create the schema before the workers race on it
    versions = _run_workers(url, "register")
    assert versions == [version_for(A)] * 4
    assert count(store, artifact_table) == 1


@pytest.mark.slow
def test_concurrent_rollbacks_each_take_one_step_back(
    url: str, registry: ArtifactRegistry, store: SqlStore
) -> None:
    versions = activate_all(registry, "shared", A, B, C, D, E)
    landed = _run_workers(url, "rollback")
    assert sorted(landed) == sorted(versions[:4])
    assert registry.active("shared").version == versions[0]
    assert count(store, artifact_activation_table) == 9


@pytest.mark.postgres
def test_losing_the_insert_race_returns_the_winners_version(pg_url: str) -> None:
    """A rival commits the same version between our read and our insert: we re-read its row."""
    store = SqlStore(pg_url)
    registry = store.artifacts
    rival = create_engine(pg_url)
    raced: list[bool] = []

    def before_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO wfe_artifact ") and not raced:
            raced.append(True)
            with rival.begin() as connection:
                connection.execute(
                    insert(artifact_table).values(
                        name="p",
                        version=version_for(A),
                        content_hash=hashlib.sha256(A).hexdigest(),
                        content=A,
                        media_type="text/plain",
                        created_at=func.now(),
                        created_by="rival",
                    )
                )

    event.listen(store._engine, "before_cursor_execute", before_insert)
    try:
        registered = registry.register("p", A, actor="me")
    finally:
        event.remove(store._engine, "before_cursor_execute", before_insert)
        rival.dispose()
    assert raced
    assert (registered.version, registered.created_by, registered.content) == (
        version_for(A),
        "rival",
        A,
    )
    assert count(store, artifact_table) == 1


# -- the task helper ---------------------------------------------------------------------------


@pytest.fixture
def configured(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``[wfe] store_conn`` pointing at the test store, for code that uses the runtime store."""
    from airflow_wfe.engine.harness import reset_runtime

    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", url)
    # A server store needs a configured key (a generated one is for the embedded SQLite store only).
    monkeypatch.setenv("AIRFLOW__WFE__AUDIT_SIGNING_KEY", "artifact-cli-test-key-0123456789abcdef")
    reset_runtime()
    yield url
    monkeypatch.undo()
    reset_runtime()


def test_importing_artifacts_is_cheap_and_the_registry_is_airflow_free() -> None:
    code = (
        "import sys, json, airflow_wfe.adapters.task.artifacts as a; "
        "cheap = sorted(m for m in sys.modules if m.split('.')[0] in {'sqlalchemy', 'airflow'}); "
        "import airflow_wfe.store.artifacts; "
        "core = sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'); "
        "print(json.dumps([cheap, core, a.__all__ == sorted(a.__all__)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == [[], [], True]


# -- CLI ---------------------------------------------------------------------------------------


def wfe(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="wfe")
    commands = parser.add_subparsers(dest="command", required=True)
    add_artifact_commands(commands)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_cli_register_activate_show_rollback(
    configured: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "v1.md", tmp_path / "v2.txt"
    first.write_bytes(A)
    second.write_bytes(B)
    a, b = version_for(A), version_for(B)

    assert wfe("artifacts", "list") == 0
    assert capsys.readouterr().out == "No artifacts registered yet.\n"

    assert wfe("artifacts", "register", "prompts/summary", str(first), "--activate") == 0
    out = capsys.readouterr().out
    assert f"Registered prompts/summary version {a} ({len(A)} bytes, text/markdown)." in out
    assert f"Activated prompts/summary version {a} (was none)." in out

    assert wfe("artifacts", "register", "prompts/summary", str(first)) == 0
    assert "is already registered" in capsys.readouterr().out
    assert wfe("artifacts", "register", "prompts/summary", str(second), "--media-type", "x/y") == 0
    assert f"version {b} (" in capsys.readouterr().out

    assert wfe("artifacts", "activate", "prompts/summary", b, "--reason", "sharper") == 0
    assert f"Activated prompts/summary version {b} (was {a})." in capsys.readouterr().out
    assert wfe("artifacts", "activate", "prompts/summary", b) == 0
    assert "is already active" in capsys.readouterr().out

    assert wfe("artifacts", "show", "prompts/summary", "--content") == 0
    assert capsys.readouterr().out == B.decode()

    assert wfe("artifacts", "show", "prompts/summary") == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == f"Artifact prompts/summary: active version {b}"
    starred = [line for line in lines if line.startswith("    *")]
    assert len(starred) == 1
    assert b in starred[0]
    assert "x/y" in starred[0]
    assert "sharper" in text
    header = next(line for line in lines if "VERSION" in line and "CREATED" in line)
    row = next(line for line in lines if a in line and "text/markdown" in line)
    assert header.index("VERSION") == row.index(a)  # aligned columns

    assert wfe("artifacts", "rollback", "prompts/summary", "--reason", "regression") == 0
    assert f"Rolled back prompts/summary: {b} → {a}." in capsys.readouterr().out

    assert wfe("artifacts", "show", "prompts/summary", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["active_version"] == a
    assert [x["version"] for x in shown["activations"]] == [a, b, a]
    assert shown["activations"][-1]["reason"] == f"rollback from {b}: regression"
    assert shown["activations"][-1]["actor"].startswith("cli:")

    assert wfe("artifacts", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "name": "prompts/summary",
            "active_version": a,
            "version_count": 2,
            "last_activated_at": shown["activations"][-1]["at"],
        }
    ]
    assert wfe("artifacts", "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["NAME", "ACTIVE", "VERSIONS", "LAST", "ACTIVATED"]
    assert listed[1].split()[:3] == ["prompts/summary", a, "2"]


def test_cli_errors(configured: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert wfe("artifacts", "register", "p", str(tmp_path / "missing.txt")) == 1
    assert "wfe: error: cannot read" in capsys.readouterr().err

    source = tmp_path / "p.txt"
    source.write_bytes(A)
    with pytest.raises(WfeError, match="not a valid name"):
        wfe("artifacts", "register", "bad name", str(source))
    assert wfe("artifacts", "register", "p", str(source), "--activate") == 0
    with pytest.raises(WfeError, match="nothing to roll back to"):
        wfe("artifacts", "rollback", "p")
    with pytest.raises(WfeError, match="no such artifact"):
        wfe("artifacts", "show", "nope")
    with pytest.raises(WfeError, match="no version '000000000000'"):
        wfe("artifacts", "activate", "p", "000000000000")
    with pytest.raises(SystemExit) as usage:
        wfe("artifacts", "show", "p", "--json", "--content")
    assert usage.value.code == 2
