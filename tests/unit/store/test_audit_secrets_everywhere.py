"""Secrets a DAG author can put in every free-text or nested field never reach any table of the
store nor any export (SQLite and PostgreSQL), with Airflow's own secrets masker in the loop."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from airflow_wfe.adapters.task.business_metrics import record_business_metric
from airflow_wfe.app import audit
from airflow_wfe.app.context import AppContext
from airflow_wfe.core.audit.events import AuditEvent
from airflow_wfe.core.audit.redact import DEFAULT_SENSITIVE_NAMES, Redactor
from airflow_wfe.core.audit.signing import HmacSigner
from airflow_wfe.core.metrics import RecordingEmitter
from airflow_wfe.core.states import StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore
from airflow_wfe.store.audit_writer import AuditLog

#: Known to Airflow's masker (a connection password, a mask_secret value).
REGISTERED = "conn-pw-5f1e9a77"
#: Known to nobody: only its key name says it is secret.
NESTED_PARAM = "nested-param-pw-0c4b"
NESTED_CONF = "nested-conf-secret-9d2e"


@pytest.fixture
def masked_store(url: str) -> SqlStore:
    from airflow.sdk._shared.secrets_masker import mask_secret, redact

    mask_secret(REGISTERED)
    redactor = Redactor(DEFAULT_SENSITIVE_NAMES, masker=lambda text: str(redact(text)))
    return SqlStore(url, audit=AuditLog(signer=HmacSigner(b"k" * 32), redactor=redactor))


def _every_value(store: SqlStore) -> str:
    metadata = MetaData()
    with store._engine.connect() as connection:
        metadata.reflect(connection)
        return "\n".join(
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in connection.execute(select(table))
        )


def test_secrets_through_every_author_field_reach_no_table_and_no_export(
    masked_store: SqlStore, tmp_path: Path
) -> None:
    store = masked_store
    recorder = Recorder(store, RecordingEmitter())
    recorder.run_started("etl", "r", actor="scheduler", reason=f"started with {REGISTERED}")
    recorder.step(
        "etl", "r", "load", StepState.RUNNING, actor="worker", reason=f"using {REGISTERED}"
    )
    recorder.step(
        "etl", "r", "load", StepState.FAILED, actor="worker",
        reason=f"OperationalError: password authentication failed for {REGISTERED}",
    )  # fmt: skip
    store.record_cost("etl", "r", "load", 1.5, detail=f"tokens via {REGISTERED}")
    assert record_business_metric(
        "spend", 3.0, unit=f"EUR {REGISTERED}", dag_id="etl", run_id="r", step_id="load",
        store=store, emitter=RecordingEmitter(),
    )  # fmt: skip
    store.record_events(
        "etl/r",
        [
            AuditEvent(
                type="manual.action",
                actor="user:alice",
                at=datetime.now(UTC),
                dag_id="etl",
                run_id="r",
                payload={
                    "params": {"db": {"password": NESTED_PARAM, "host": "db1"}},
                    "conf": {"cfg": {"secret": NESTED_CONF}},
                    "note": f"artifact metadata {REGISTERED}",
                },
            )
        ],
    )
    everything = _every_value(store)
    assert "db1" in everything  # the walk does reach the rows
    for secret in (REGISTERED, NESTED_PARAM, NESTED_CONF):
        assert secret not in everything, f"{secret} leaked into a table"
    ctx = AppContext.for_store(store, RecordingEmitter())
    for fmt in ("jsonl", "csv"):
        exported = audit.export(ctx, fmt=fmt)  # type: ignore[arg-type]
        text = (exported.header or "") + "".join(exported.lines)
        assert "db1" in text
        for secret in (REGISTERED, NESTED_PARAM, NESTED_CONF):
            assert secret not in text, f"{secret} leaked into the {fmt} export"


def test_sensitive_values_at_any_depth_are_found_for_the_masker() -> None:
    """What a governed task registers with Airflow's masker from its params and conf: the values
    under sensitive names at any depth (``params.db.password``, ``conf.cfg.secret``), every leaf
    of a sensitive branch, and nothing else."""
    redactor = Redactor(DEFAULT_SENSITIVE_NAMES)
    params = {
        "db": {"password": NESTED_PARAM, "host": "db1", "port": 5432},
        "cfg": {"secret": NESTED_CONF, "retries": [1, 2]},
        "api_key": {"primary": "k-one-1234", "spares": ["k-two-5678"]},
        "token": "",
        "flags": [{"passphrase": "pp-9d8c7b"}],
        "empty_secret": None,
    }
    assert redactor.sensitive_values(params) == [
        NESTED_PARAM,
        NESTED_CONF,
        "k-one-1234",
        "k-two-5678",
        "pp-9d8c7b",
    ]
    assert redactor.sensitive_values({"db": {"host": "db1"}}) == []
