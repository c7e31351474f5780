"""The ``wfe`` command as users run it: a real process, a real store, exit codes and JSON shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store.schema import HEAD_REVISION
from airflow_wfe.testing import temporary_store

WFE = str(Path(sys.executable).parent / "wfe")


def _wfe(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW__WFE__STORE_CONN": url}
    return subprocess.run(
        [WFE, *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    # The shipped testing kit: a SQLite store in tmp_path, configured for this process meanwhile.
    with temporary_store(tmp_path) as ctx:
        _write_runs(ctx.recorder)
        yield ctx.settings.store_conn


def _write_runs(recorder: Recorder) -> None:
    recorder.run_started(
        "etl", "run-1", actor="worker", reason="task a started", facts={"run_type": "manual"}
    )
    recorder.step(
        "etl", "run-1", "a", StepState.RUNNING, actor="worker", reason="task started", try_number=1
    )
    recorder.step(
        "etl",
        "run-1",
        "a",
        StepState.RETRYING,
        actor="worker",
        reason="ValueError: x",
        try_number=1,
    )
    recorder.step(
        "etl", "run-1", "a", StepState.RUNNING, actor="worker", reason="task started", try_number=2
    )
    recorder.step(
        "etl", "run-1", "a", StepState.FAILED, actor="worker", reason="ValueError: x", try_number=2
    )
    recorder.run_finished("etl", "run-1", succeeded=False, actor="scheduler", reason="a failed")
    recorder.run_started("etl", "run-2", actor="scheduler", reason="scheduler started the run")


def test_runs_list_json(store_url: str) -> None:
    result = _wfe(store_url, "runs", "list", "--json")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [(r["dag_id"], r["run_id"], r["state"]) for r in runs] == [
        ("etl", "run-2", "RUNNING"),
        ("etl", "run-1", "FAILED"),
    ]
    filtered = json.loads(_wfe(store_url, "runs", "list", "--state", "failed", "--json").stdout)
    assert [r["run_id"] for r in filtered] == ["run-1"]


def test_runs_show_json_contract(store_url: str) -> None:
    result = _wfe(store_url, "runs", "show", "etl", "run-1", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["state"] == "FAILED"
    assert [t["to_state"] for t in run["transitions"]] == [
        "CREATED",
        "VALIDATED",
        "RUNNING",
        "FAILED",
    ]
    for transition in run["transitions"]:
        assert set(transition) >= {"from_state", "to_state", "at", "actor", "reason"}
    (step,) = run["steps"]
    assert step["step_id"] == "a"
    assert step["state"] == "FAILED"
    assert [(t["from_state"], t["to_state"], t["try_number"]) for t in step["transitions"]] == [
        (None, "PENDING", 1),
        ("PENDING", "RUNNING", 1),
        ("RUNNING", "RETRYING", 1),
        ("RETRYING", "RUNNING", 2),
        ("RUNNING", "FAILED", 2),
    ]


def test_runs_show_text_tells_the_story(store_url: str) -> None:
    result = _wfe(store_url, "runs", "show", "etl", "run-1")
    assert result.returncode == 0
    assert "Run etl / run-1: FAILED" in result.stdout
    assert "RUNNING → RETRYING" in result.stdout
    assert "a: FAILED (try 2, 1 retry)" in result.stdout


def test_unknown_run_is_a_finding_without_traceback(store_url: str) -> None:
    result = _wfe(store_url, "runs", "show", "etl", "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == "wfe: error: no governed run etl/nope in the state store"
    assert "Traceback" not in result.stderr
    debug = _wfe(store_url, "--debug", "runs", "show", "etl", "nope")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_usage_error_exits_2(store_url: str) -> None:
    result = _wfe(store_url, "runs", "show", "only-one-arg")
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_unavailable_store_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/dir/wfe.db"
    result = _wfe(url, "runs", "list")
    assert result.returncode == 1
    assert "missing/dir does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_password_is_masked_in_errors() -> None:
    url = "postgresql+psycopg://wfe:s3cret-pw@127.0.0.1:1/wfe"
    result = _wfe(url, "runs", "list")
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stderr
    assert "***" in result.stderr


def test_db_upgrade_and_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    check = _wfe(url, "db", "check", "--json")
    assert check.returncode == 1
    assert json.loads(check.stdout)["revision"] is None
    up = _wfe(url, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert f"(empty) → {HEAD_REVISION}" in up.stdout
    again = _wfe(url, "db", "upgrade")
    assert f"already at revision {HEAD_REVISION}" in again.stdout
    assert _wfe(url, "db", "check").returncode == 0


def test_airflow_wfe_is_the_same_command(store_url: str) -> None:
    env = {**os.environ, "AIRFLOW__WFE__STORE_CONN": store_url}
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run(
        [airflow, "wfe", "runs", "list", "--json"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(_wfe(store_url, "runs", "list", "--json").stdout)


def test_artifacts_through_the_wfe_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/artifacts.db"
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Hello {name}")
    registered = _wfe(url, "artifacts", "register", "prompts/hello", str(prompt), "--activate")
    assert registered.returncode == 0, registered.stderr
    listed = json.loads(_wfe(url, "artifacts", "list", "--json").stdout)
    assert [(a["name"], a["version_count"]) for a in listed] == [("prompts/hello", 1)]
    assert listed[0]["active_version"]
    shown = _wfe(url, "artifacts", "show", "prompts/hello", "--content")
    assert shown.stdout == "Hello {name}"
    rollback = _wfe(url, "artifacts", "rollback", "prompts/hello")
    assert rollback.returncode == 1
    assert rollback.stderr.startswith("wfe: error: artifact 'prompts/hello'")


def test_store_file_that_is_not_a_database_is_one_clear_line(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are notes, not an airflow-wfe store\n")
    result = _wfe(f"sqlite:///{not_a_db}", "runs", "list")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(not_a_db) in lines[0]
    assert "file is not a database" in lines[0]
    assert "unexpected error" not in lines[0]


def test_closed_pipe_is_quiet(store_url: str) -> None:
    # The reader is gone before wfe writes a byte: `wfe runs list | head -0`, deterministically.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [WFE, "runs", "list", "--json"],
            check=False,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "AIRFLOW__WFE__STORE_CONN": store_url},
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141  # 128 + SIGPIPE, what a shell reports for `yes | head -0`


def test_airflow_wfe_help_version_and_debug(store_url: str) -> None:
    from airflow_wfe.cli.main import build_parser

    env = {**os.environ, "AIRFLOW__WFE__STORE_CONN": store_url}
    airflow = str(Path(sys.executable).parent / "airflow")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [airflow, "wfe", *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )

    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == _wfe(store_url, "--version").stdout.strip()

    helped = run("--help")
    assert helped.returncode == 0, helped.stderr
    commands = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    listed = commands._choices_actions  # type: ignore[attr-defined]
    assert len(listed) >= 10
    for command in listed:
        assert f"  {command.dest:<12} {command.help}" in helped.stdout
    assert "--debug" in helped.stdout
    assert "--version" in helped.stdout

    sub_help = run("runs", "list", "--help")
    assert sub_help.returncode == 0
    assert "--dag-id" in sub_help.stdout  # wfe's own parser answered, not Airflow's wrapper

    debugged = run("--debug", "runs", "show", "no-such-dag", "no-such-run")
    assert debugged.returncode == 1
    assert "Traceback" in debugged.stderr


def test_airflow_config_list_shows_every_wfe_default(tmp_path: Path) -> None:
    # Airflow 3.3 hides every value (its own sections too) unless --show-values; with it, each
    # [wfe] option shows the default declared once in airflow_wfe/config.py, read through provider
    # info in a fresh AIRFLOW_HOME with no airflow.cfg entry for [wfe].
    from airflow_wfe.config import OPTIONS

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIRFLOW__WFE__") and key != "AIRFLOW_CONFIG"
    }
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run(
        [airflow, "config", "list", "--section", "wfe", "--show-values", "--hide-sensitive"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    shown = dict(
        line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "")
        for line in result.stdout.splitlines()
        if line and not line.startswith(("[", "#"))
    )
    for option in OPTIONS:
        expected = "< hidden >" if option.sensitive else option.default
        assert shown.get(option.name, "<missing>").strip() == expected.strip(), option.name
