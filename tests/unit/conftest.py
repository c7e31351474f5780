"""Fixtures shared by the unit tests of the store and what is built on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_wfe.store import SqlStore, schema
from airflow_wfe.store import engine as engine_module


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    """Engines and schema checks are cached per URL per process: start and end every test clean."""
    engine_module.dispose_engines()
    schema._checked.clear()
    yield
    engine_module.dispose_engines()
    schema._checked.clear()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a new SQLite file, or the test PostgreSQL database without wfe tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/wfe.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(url: str) -> SqlStore:
    return SqlStore(url)
