"""``wfe audit ...`` as an auditor runs it: a real process on a real store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import delete

from airflow_wfe.core.audit.signing import load_signer
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog
from airflow_wfe.store.engine import get_engine
from airflow_wfe.store.tables import audit_event_table

WFE = str(Path(sys.executable).parent / "wfe")
KEY = "cli-test-audit-key-0123456789abcdef"
History = Callable[..., None]


def _wfe(home: Path, url: str, *args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__WFE__STORE_CONN": url,
        "AIRFLOW__WFE__AUDIT_SIGNING_KEY": key,
    }
    return subprocess.run(
        [WFE, *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/wfe.db"


@pytest.fixture
def cli_store(sqlite_url: str) -> SqlStore:
    return SqlStore(
        sqlite_url, audit=AuditLog(signer=load_signer(KEY, Path("unused")), checkpoint_every=4)
    )


def test_verify_passes_then_names_the_deleted_event(
    tmp_path: Path, sqlite_url: str, cli_store: SqlStore, write_history: History
) -> None:
    write_history(cli_store)
    ok = _wfe(tmp_path, sqlite_url, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "store: OK: 26 events #1..#26" in ok.stdout
    # Tampering goes around the store on purpose: straight to its database.
    with get_engine(sqlite_url).begin() as connection:
        connection.execute(delete(audit_event_table).where(audit_event_table.c.seq == 12))
    broken = _wfe(tmp_path, sqlite_url, "audit", "verify", "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert report["store"]["findings"][0] == {
        "seq": 12,
        "kind": "deleted",
        "message": "event(s) #12 missing before #13",
    }
    text = _wfe(tmp_path, sqlite_url, "audit", "verify")
    assert "first problem at event #12: deleted" in text.stderr


def test_export_jsonl_and_csv_carry_verifiable_bodies(
    tmp_path: Path, sqlite_url: str, cli_store: SqlStore, write_history: History
) -> None:
    write_history(cli_store)
    jsonl = _wfe(tmp_path, sqlite_url, "audit", "export", "--run", "run-1")
    assert jsonl.returncode == 0, jsonl.stderr
    lines = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(lines) == 13
    assert {line["run_id"] for line in lines} == {"run-1"}
    assert {line["chain"] for line in lines} == {"main"}  # the store's one chain
    for line in lines:
        assert hashlib.sha256(line["body"].encode()).hexdigest() == line["hash"]
        # docs/audit.md: a layout-2 body begins with the header rebuilt from the line's fields.
        fields = ("seq", "prev", "at", "type", "actor", "dag_id", "run_id", "step_id")
        head = json.dumps(
            [2, *(line[f] for f in fields)], separators=(",", ":"), ensure_ascii=False
        )
        assert line["v"] == 2
        assert line["body"].startswith(head + "{")
    out = tmp_path / "trail.csv"
    csv_run = _wfe(tmp_path, sqlite_url, "audit", "export", "--format", "csv", "-o", str(out))
    assert csv_run.returncode == 0, csv_run.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == (
        "seq,at,type,actor,dag_id,run_id,step_id,map_index,payload,versions,prev_hash,hash"
    )
    assert len(rows) == 27
    assert "wrote 26 event(s)" in csv_run.stderr


def test_show_tells_the_story_of_one_run(
    tmp_path: Path, sqlite_url: str, cli_store: SqlStore, write_history: History
) -> None:
    write_history(cli_store, runs=1, steps=1)
    shown = _wfe(tmp_path, sqlite_url, "audit", "show", "etl", "run-0")
    assert shown.returncode == 0, shown.stderr
    assert "run (new) -> CREATED" in shown.stdout
    assert "step step0 RUNNING -> SUCCEEDED (try 1): ok" in shown.stdout
    assert "run RUNNING -> COMPLETED: done" in shown.stdout
    missing = _wfe(tmp_path, sqlite_url, "audit", "show", "etl", "nope")
    assert missing.returncode == 1
    assert "nope" in missing.stderr


def test_archive_keeps_the_chain_verifiable(
    tmp_path: Path, sqlite_url: str, cli_store: SqlStore
) -> None:
    recorder = Recorder(cli_store, NullEmitter())
    old = datetime.now(UTC) - timedelta(days=100)
    for index in range(3):
        run_id = f"old-{index}"
        recorder.run_started("etl", run_id, actor="scheduler", reason="go", at=old)
        recorder.run_finished("etl", run_id, succeeded=True, actor="scheduler", reason="ok", at=old)
    recorder.run_started("etl", "recent", actor="scheduler", reason="go")
    folder = tmp_path / "archive"
    moved = _wfe(
        tmp_path, sqlite_url, "audit", "archive", "--older-than", "90d", "--to", str(folder)
    )
    assert moved.returncode == 0, moved.stderr
    assert "archived events #1..#12 (12)" in moved.stdout
    (archive_file,) = folder.glob("*.jsonl")
    ok = _wfe(tmp_path, sqlite_url, "audit", "verify", "--archive", str(archive_file), "--json")
    assert ok.returncode == 0, ok.stdout
    report = json.loads(ok.stdout)
    assert report[str(archive_file)]["events"] == 12
    assert report["store"]["first_seq"] == 13  # the chain goes on after the archive
    assert report["store"]["events"] == 4  # "recent" (3) + the archive event itself

    lines = archive_file.read_text().splitlines()
    lines[5] = lines[5].replace("run created", "run invented")
    archive_file.write_text("\n".join(lines) + "\n")
    tampered = _wfe(tmp_path, sqlite_url, "audit", "verify", "--archive", str(archive_file))
    assert tampered.returncode == 1
    assert "event #5: edited" in tampered.stdout


def test_ed25519_signatures_verify_with_the_public_key_only(
    tmp_path: Path, sqlite_url: str, write_history: History
) -> None:
    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "audit.pem"
    pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = tmp_path / "audit.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    store = SqlStore(
        sqlite_url,
        audit=AuditLog(signer=load_signer(f"ed25519:{pem}", Path("unused")), checkpoint_every=5),
    )
    write_history(store, runs=1)
    # An auditor without any signing key: only the public key.
    ok = _wfe(tmp_path, sqlite_url, "audit", "verify", "--public-key", str(public), key="")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    wrong = _wfe(tmp_path, sqlite_url, "audit", "verify", "--public-key", str(other), key="")
    assert wrong.returncode == 1
    assert "unknown key" in wrong.stdout
