"""Test environment: a throw-away AIRFLOW_HOME, set before anything imports Airflow.

Airflow reads its configuration at import time, so this module sets every variable first. The
plugin and provider are those of the installed package (entry points), exactly as in production.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

_HERE = pathlib.Path(__file__).parent
_ROOT = _HERE.parent
_HOME = pathlib.Path(tempfile.mkdtemp(prefix="wfe-test-home-"))
# The tests' DAGs folder: the shipped examples plus the test-only shapes, so the examples are tested
# exactly as shipped without keeping copies in the repo.
_DAGS = _HOME / "dags"
_DAGS.mkdir()
for _source in [*(_ROOT / "dags").glob("*.py"), *(_HERE / "dags").glob("*.py")]:
    shutil.copy(_source, _DAGS / _source.name)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(_HOME / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-secret-0123456789abcdef",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{_HOME}/wfe.db",
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


@pytest.fixture
def pg_url() -> str:
    """A PostgreSQL URL on a fresh schema-less database state (the wfe tables dropped first)."""
    reason = pg_unreachable_reason()
    if reason:
        if os.environ.get("WFE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"WFE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    from sqlalchemy import inspect

    with engine.begin() as connection:
        for table in inspect(connection).get_table_names():
            if table.startswith("wfe_"):
                connection.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()
    from airflow_wfe.store import schema

    schema._checked.discard(PG_URL)
    return PG_URL


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
