"""Test environment: a throw-away AIRFLOW_HOME, set before anything imports Airflow.

Airflow reads its configuration at import time, so this module sets every variable first. The
plugin and provider are those of the installed package (entry points), exactly as in production.
What a throw-away home is (shared with the real-cluster tests) is in ``tests/airflow_env.py``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator

from airflow_env import airflow_home_env, scenario

_ROOT = pathlib.Path(__file__).parent.parent
_HOME = pathlib.Path(tempfile.mkdtemp(prefix="wfe-test-home-"))
# The tests' DAGs folder: the shipped examples plus the test-only shapes (the ``session`` scenario),
# so the examples are tested exactly as shipped without keeping copies in the repo.
_DAGS = _HOME / "dags"
# Airflow puts the DAGs folder on sys.path in its components, so DAG files can import helpers there.
sys.path.insert(0, str(_DAGS))
shutil.copytree(_ROOT / "dags", _DAGS, ignore=shutil.ignore_patterns("__pycache__"))
shutil.copytree(
    scenario("session"), _DAGS, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
)
os.environ.update(
    {
        **airflow_home_env(_HOME, _DAGS),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        # The example policies, as `make demo` uses them (dags/policies, copied with the DAGs).
        "AIRFLOW__WFE__POLICY_PATH": str(_DAGS / "policies"),
    }
)
os.environ.pop("AIRFLOW__WFE__GOVERN", None)
os.environ.pop("AIRFLOW__WFE__ENABLED", None)

import pytest  # noqa: E402

PG_URL = os.environ.get("WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def airflow_home() -> pathlib.Path:
    return _HOME


def pg_unreachable_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'airflow-wfe[postgres]')"
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=3) as connection:
            connection.execute("select 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """A PostgreSQL database of this test session's own, dropped at the end.

    Several test sessions may share one server (developers, CI, parallel helpers); a database each
    keeps them from dropping each other's tables.
    """
    reason = pg_unreachable_reason()
    if reason:
        if os.environ.get("WFE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"WFE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"wfe_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    from airflow_wfe.store.engine import dispose_engines

    dispose_engines()
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    """The session's PostgreSQL database with no wfe tables: each test starts from an empty store."""
    from sqlalchemy import create_engine, inspect, text

    from airflow_wfe.store import schema
    from airflow_wfe.store.engine import dispose_engines

    dispose_engines()
    engine = create_engine(pg_session_url)
    with engine.begin() as connection:
        for table in inspect(connection).get_table_names():
            if table.startswith("wfe_"):
                connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    engine.dispose()
    schema._checked.discard(pg_session_url)
    return pg_session_url


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database, created once per test session (what `airflow db migrate` does)."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="session")
def dagbag(airflow_db: None):  # type: ignore[no-untyped-def]
    """The tests' DAGs folder parsed once, failing on any import error."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def fresh_runtime() -> Iterator[None]:
    """Forget cached settings, store and emitter before and after a test that changes config."""
    from airflow_wfe.engine.harness import reset_runtime

    reset_runtime()
    yield
    reset_runtime()
