"""``airflow db migrate`` migrates the wfe store, through Airflow's external DB managers.

The provider info names :class:`airflow_wfe.adapters.db_manager.WfeDBManager` under ``db-managers``;
Airflow's ``RunDBManager`` runs it after its own migrations. Each test runs the real ``airflow``
command in a throw-away home and reads the store's revision and tables afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from airflow_env import airflow_home_env
from sqlalchemy import create_engine, inspect, text

from airflow_wfe.store.schema import HEAD_REVISION, VERSION_TABLE

BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _env(tmp_path: Path, store_url: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    env.update(airflow_home_env(tmp_path / "home", dags))
    env["AIRFLOW__WFE__STORE_CONN"] = store_url
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _revision(url: str) -> tuple[str | None, set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = {t for t in inspect(connection).get_table_names() if t.startswith("wfe_")}
            if VERSION_TABLE not in tables:
                return None, tables
            found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        return str(found), tables
    finally:
        engine.dispose()


def test_airflow_db_migrate_creates_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = _env(tmp_path, url)
    assert _revision(url) == (None, set())

    migrated = _run(env, "airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]

    revision, tables = _revision(url)
    assert revision == HEAD_REVISION
    assert {"wfe_run", "wfe_step", "wfe_transition", "wfe_audit_event"} <= tables
    # Airflow's own check now also waits for the store.
    checked = _run(env, "airflow", "db", "check-migrations", "-t", "10")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]


@pytest.mark.postgres
def test_airflow_db_migrate_upgrades_an_older_store_on_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    env = _env(tmp_path, pg_url)
    # An older store, as a previous release of airflow-wfe left it.
    older = _run(env, "wfe", "db", "upgrade", "--revision", "0001")
    assert older.returncode == 0, older.stderr
    assert _revision(pg_url)[0] == "0001"

    migrated = _run(env, "airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    assert _revision(pg_url)[0] == HEAD_REVISION

    # Migrating again is a no-op, and `wfe db check` agrees the store is current.
    again = _run(env, "airflow", "db", "migrate")
    assert again.returncode == 0, again.stderr[-2000:]
    check = _run(env, "wfe", "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_airflow_discovers_and_validates_the_manager() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.utils.db_manager import RunDBManager

    assert "airflow_wfe.adapters.db_manager.WfeDBManager" in ProvidersManager().db_managers
    # Airflow's own checks: no table shared with Airflow's metadata, a version table of its own,
    # an env.py in the migration folder.
    RunDBManager().validate()
