"""Fixtures shared by the integration tests: the real Airflow cluster, and the store that several
processes race on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_env import scenario
from cluster import Cluster

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


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A started :class:`Cluster` on the scenario the test's ``cluster`` marker names, stopped after.

    The marker's first argument is a scenario name (``tests/scenarios/<name>``) or a DAGs folder
    path; its keyword arguments are :class:`Cluster`'s options (``deadline_s`` is required), e.g.
    ``pytest.mark.cluster("killed", deadline_s=200.0, ledger=True)``.
    """
    marker = request.node.get_closest_marker("cluster")
    if marker is None or len(marker.args) != 1:
        pytest.fail(
            f"{request.node.nodeid} uses the cluster fixture without a cluster(SCENARIO, ...) marker",
            pytrace=False,
        )
    where = marker.args[0]
    dags = where if isinstance(where, Path) else scenario(where)
    with Cluster.running(tmp_path, dags=dags, **marker.kwargs) as started:
        yield started
