"""The Celery configuration that warms the listener up in a Celery worker before its pool forks.

Each check runs in a fresh interpreter, as ``airflow celery worker`` does: the configuration module
is imported (Airflow's ``[celery] celery_config_options``), then Celery's own ``worker_init`` signal
is sent as the worker sends it before starting its pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow.providers.celery", reason="the Celery provider (extra 'celery')")

PROBE = """
import json, sys
from airflow_wfe.adapters import celery_config
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
before = "airflow_wfe.engine.recorder" in sys.modules
from celery.signals import worker_init
worker_init.send(sender=None)
print(json.dumps({
    "same_config": celery_config.CELERY_CONFIG == DEFAULT_CELERY_CONFIG,
    "loaded_before": before,
    "loaded_after": "airflow_wfe.engine.recorder" in sys.modules,
    "store_driver": "sqlalchemy.dialects.sqlite" in sys.modules,
}))
"""


def _probe(tmp_path: Path, **env: str) -> dict[str, bool]:
    environ = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{tmp_path / 'wfe.db'}",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_worker_init_loads_the_hooks_needs_and_opens_the_store(tmp_path: Path) -> None:
    result = _probe(tmp_path)
    assert result["same_config"], "the configuration is Airflow's default one"
    assert not result["loaded_before"], "importing the configuration loads nothing heavy"
    assert result["loaded_after"]
    assert result["store_driver"]
    assert (tmp_path / "wfe.db").exists(), "the store was opened and its schema checked"


def test_a_disabled_plugin_loads_nothing(tmp_path: Path) -> None:
    result = _probe(tmp_path, AIRFLOW__WFE__ENABLED="False")
    assert not result["loaded_after"]
    assert not (tmp_path / "wfe.db").exists()
