"""Fixtures shared by the unit tests of the store and what is built on it, audit included (a signed
store and a recorder writing a small governed history)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore, schema
from airflow_wfe.store import engine as engine_module
from airflow_wfe.store.audit_writer import AuditLog


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


KEY = b"unit-test-audit-key-0123456789abcdef"


@pytest.fixture
def signer() -> HmacSigner:
    return HmacSigner(KEY)


@pytest.fixture(params=[2, 1], ids=["body-v2", "body-v1"])
def signed_store(request: pytest.FixtureRequest, url: str, signer: HmacSigner) -> SqlStore:
    """A store whose chain is signed, with a checkpoint every 5 events; its events are written in
    the current body layout (2) and in the old one (1: chains written before it must still
    verify, and tampering with them must still be named)."""
    return SqlStore(
        url, audit=AuditLog(signer=signer, checkpoint_every=5, body_version=request.param)
    )


def _write_history(store: SqlStore, runs: int = 2, steps: int = 3) -> None:
    recorder = Recorder(store, NullEmitter())
    for r in range(runs):
        run_id = f"run-{r}"
        recorder.run_started("etl", run_id, actor="scheduler", reason="started")
        for s in range(steps):
            for state in (StepState.RUNNING, StepState.SUCCEEDED):
                recorder.step(
                    "etl", run_id, f"step{s}", state, actor="worker", reason="ok", try_number=1
                )
        recorder.run_finished("etl", run_id, succeeded=True, actor="scheduler", reason="done")


@pytest.fixture
def write_history() -> Callable[..., None]:
    """Writes complete runs through the recorder: per run 3 run events, 3 per step, 1 at the end."""
    return _write_history
