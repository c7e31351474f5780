"""``wfe audit keygen`` and ``wfe audit verify`` with real keys, as an operator and an auditor run
them: a real process on a real SQLite store."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from airflow_wfe.core.audit.signing import load_signer
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog

WFE = str(Path(sys.executable).parent / "wfe")
History = Callable[..., None]


def _wfe(home: Path, url: str, *args: str, **options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__WFE__STORE_CONN": url}
    env.pop("AIRFLOW__WFE__AUDIT_SIGNING_KEY", None)
    env.update({f"AIRFLOW__WFE__{k.upper()}": v for k, v in options.items()})
    return subprocess.run(
        [WFE, *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_keygen_then_an_auditor_verifies_with_the_public_key_only(
    tmp_path: Path, write_history: History
) -> None:
    url = f"sqlite:///{tmp_path}/wfe.db"
    keys = tmp_path / "keys"
    made = _wfe(tmp_path, url, "audit", "keygen", "--out", str(keys))
    assert made.returncode == 0, made.stderr
    private, public = keys / "wfe-audit.pem", keys / "wfe-audit.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert f"audit_signing_key = ed25519:{private}" in made.stdout
    key_id = load_signer(f"ed25519:{private}", Path("unused")).key_id
    assert f"key id:      {key_id}" in made.stdout
    again = _wfe(tmp_path, url, "audit", "keygen", "--out", str(keys))
    assert again.returncode == 1
    assert "never overwritten" in again.stderr

    signer = load_signer(f"ed25519:{private}", Path("unused"))
    write_history(SqlStore(url, audit=AuditLog(signer=signer, checkpoint_every=5)), runs=1)
    auditor = tmp_path / "auditor"  # no signing key, only the public key configured
    ok = _wfe(auditor, url, "audit", "verify", audit_verify_keys=str(public))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "store: OK: 13 events" in ok.stdout
    assert key_id in ok.stdout
    assert not (auditor / "wfe_audit.key").exists()


def test_verify_without_a_key_is_not_verified_and_mints_nothing(
    tmp_path: Path, write_history: History
) -> None:
    url = f"sqlite:///{tmp_path}/wfe.db"
    signer = load_signer("cli-test-audit-key-0123456789abcdef", Path("unused"))
    write_history(SqlStore(url, audit=AuditLog(signer=signer)), runs=1)
    home = tmp_path / "home"
    home.mkdir()
    result = _wfe(home, url, "audit", "verify")
    assert result.returncode == 1
    assert "store: NOT VERIFIED" in result.stdout
    assert "no key" in result.stdout
    assert not (home / "wfe_audit.key").exists()
    hashes = _wfe(home, url, "audit", "verify", "--no-signatures")
    assert hashes.returncode == 0, hashes.stdout + hashes.stderr
    assert "OK (hashes only, signatures NOT checked)" in hashes.stdout
    assert "--no-signatures" in hashes.stdout


def test_verify_of_a_mistyped_store_is_an_error_not_an_empty_trail(tmp_path: Path) -> None:
    missing = tmp_path / "wfe-typo.db"
    result = _wfe(tmp_path, f"sqlite:///{missing}", "audit", "verify", "--no-signatures")
    assert result.returncode == 1
    assert "no such file" in result.stderr
    assert "OK" not in result.stdout
    assert not missing.exists()


def test_anchor_then_verify_anchors_names_the_position_cut_off(
    tmp_path: Path, write_history: History
) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/wfe.db"
    key = "cli-test-audit-key-0123456789abcdef"
    write_history(SqlStore(url, audit=AuditLog(signer=load_signer(key, Path("unused")))), runs=1)
    anchors = tmp_path / "anchors"
    made = _wfe(
        tmp_path, url, "audit", "anchor", audit_signing_key=key, audit_anchor_dir=str(anchors)
    )
    assert made.returncode == 0, made.stderr
    assert "anchored the chain at event #13" in made.stdout
    ok = _wfe(tmp_path, url, "audit", "verify", "--anchors", str(anchors), audit_signing_key=key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"anchors {anchors}: OK: 1 anchor(s)" in ok.stdout
    with sqlite3.connect(tmp_path / "wfe.db") as connection:
        connection.execute("DELETE FROM wfe_audit_event WHERE seq > 10")
    cut = _wfe(tmp_path, url, "audit", "verify", "--anchors", str(anchors), audit_signing_key=key)
    assert cut.returncode == 1
    assert "event #13: truncated: the last anchored position, event #13" in cut.stdout
