"""Fixtures shared by the integration tests that race several processes on one store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_wfe.store import engine as engine_module
from airflow_wfe.store import schema


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store on each database (no schema yet), with no engine cached from another test:
    worker processes inherit nothing, so what they race on is the store itself."""
    engine_module.dispose_engines()
    schema._checked.clear()
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/wfe.db"
    else:
        yield str(request.getfixturevalue("pg_url"))
    engine_module.dispose_engines()
    schema._checked.clear()
