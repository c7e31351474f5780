"""``wfe doctor`` as an operator runs it: a real process, a real store, real Airflow discovery."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

WFE = str(Path(sys.executable).parent / "wfe")
NAMES = ["versions", "store", "signing key", "policies", "plugin", "provider", "statsd"]


def _doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__WFE__")}
    clean["AIRFLOW_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [WFE, "doctor", "--json"],
        check=False,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=180,
    )


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_healthy_deployment_passes_every_check(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/wfe.db"
    up = subprocess.run(
        [WFE, "db", "upgrade"],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW__WFE__STORE_CONN": store},
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    policies = Path(__file__).parents[3] / "dags" / "policies"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd:
        statsd.bind(("127.0.0.1", 0))
        port = statsd.getsockname()[1]
        result = _doctor(
            tmp_path,
            AIRFLOW__WFE__STORE_CONN=store,
            AIRFLOW__WFE__POLICY_PATH=str(policies),
            AIRFLOW__WFE__STATSD_ON="True",
            AIRFLOW__WFE__STATSD_HOST="127.0.0.1",
            AIRFLOW__WFE__STATSD_PORT=str(port),
        )
        statsd.settimeout(5)
        assert statsd.recv(100) == b"wfe.doctor:1|c"  # the probe really reached the listener
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == NAMES
    assert {c["status"] for c in report["checks"]} == {"ok"}, report


def test_each_broken_part_is_its_own_failing_line(tmp_path: Path) -> None:
    bad_policies = tmp_path / "policies"
    bad_policies.mkdir()
    (bad_policies / "broken.yaml").write_text("this: [is not: a policy\n")
    result = _doctor(
        tmp_path,
        # An empty file: reachable, never migrated.
        AIRFLOW__WFE__STORE_CONN=f"sqlite:///{tmp_path}/never-migrated.db",
        AIRFLOW__WFE__AUDIT_SIGNING_KEY=f"file:{tmp_path}/missing.key",
        AIRFLOW__WFE__POLICY_PATH=str(bad_policies),
        AIRFLOW__WFE__STATSD_ON="True",
        AIRFLOW__WFE__STATSD_HOST="127.0.0.1",
        AIRFLOW__WFE__STATSD_PORT=str(_closed_udp_port()),
    )
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert list(checks) == NAMES
    for name in ("store", "signing key", "policies", "statsd"):
        assert checks[name]["status"] == "FAIL", checks[name]
    assert "wfe db upgrade" in checks["store"]["detail"]
    assert "missing.key" in checks["signing key"]["detail"]
    assert "broken.yaml" in checks["policies"]["detail"]
    # The parts that are fine still say so.
    for name in ("versions", "plugin", "provider"):
        assert checks[name]["status"] == "ok", checks[name]


def test_text_output_is_one_line_per_check(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__WFE__")}
    result = subprocess.run(
        [WFE, "doctor"],
        check=False,
        capture_output=True,
        text=True,
        env={**clean, "AIRFLOW_HOME": str(tmp_path / "home")},
        timeout=180,
    )
    lines = result.stdout.strip().splitlines()
    assert [line[6:18].strip() for line in lines] == NAMES, result.stdout
