"""The state store's tables: runs, steps and the transitions of both.

The store has its own ``MetaData`` with a naming convention, so constraint names are stable across
SQLite and PostgreSQL and migrations can refer to them. Every table is prefixed ``wfe_`` because the
store may share a database with Airflow's metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "artifact_activation_table",
    "artifact_table",
    "metadata",
    "run_artifact_table",
    "run_metric_table",
    "run_table",
    "step_table",
    "transition_table",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only gives INTEGER PRIMARY KEY its rowid behaviour for plain INTEGER, PostgreSQL wants BIGINT.
_Id = BigInteger().with_variant(Integer(), "sqlite")

run_table = Table(
    "wfe_run",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("state", String(32), nullable=False),
    # Optimistic locking: every state change bumps it; a writer that read an older value retries.
    Column("version", Integer, nullable=False, default=1),
    Column("run_type", String(50)),
    Column("dag_version_id", String(64)),
    # Provenance of runs of YAML workflows: the spec's own version and its content hash.
    Column("spec_version", String(64)),
    Column("spec_hash", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dag_id", "run_id", name="uq_wfe_run_dag_id_run_id"),
)

step_table = Table(
    "wfe_step",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", String(250), nullable=False),
    # Airflow's map index: -1 for an unmapped task, 0..n-1 for each instance of a mapped task.
    Column("map_index", Integer, nullable=False, default=-1),
    Column("state", String(32), nullable=False),
    Column("try_number", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_pk", "step_id", "map_index", name="uq_wfe_step_run_step_map"),
)

transition_table = Table(
    "wfe_transition",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), nullable=False),
    Column("step_pk", _Id, ForeignKey("wfe_step.id", ondelete="CASCADE")),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(250), nullable=False),
    Column("reason", Text),
    Column("try_number", Integer),
    Index("ix_wfe_transition_run_pk_id", "run_pk", "id"),
)

#: Versioned artifacts (prompt templates, creatives, configuration): immutable content, addressed by
#: name and content hash, so registering the same content twice yields the same version.
artifact_table = Table(
    "wfe_artifact",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(250), nullable=False),
    Column("version", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(250), nullable=False),
    UniqueConstraint("name", "version", name="uq_wfe_artifact_name_version"),
)

#: Every activation, in order; the latest one per name is the active version. Rolling back is
#: activating the version that was active before, so the history keeps the rollback too.
artifact_activation_table = Table(
    "wfe_artifact_activation",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(250), nullable=False),
    Column("artifact_pk", _Id, ForeignKey("wfe_artifact.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(250), nullable=False),
    Column("reason", Text),
    Index("ix_wfe_artifact_activation_name_id", "name", "id"),
)

#: Which artifact versions a run used.
run_artifact_table = Table(
    "wfe_run_artifact",
    metadata,
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), primary_key=True),
    Column("artifact_pk", _Id, ForeignKey("wfe_artifact.id", ondelete="CASCADE"), primary_key=True),
    Column("used_at", DateTime(timezone=True), nullable=False),
)

#: Business metrics a step recorded for its run (ROI, CPA, cost per generation, ...): kept with the
#: run so reports can read them back, and emitted as StatsD gauges when recorded.
run_metric_table = Table(
    "wfe_run_metric",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", String(250)),
    Column("map_index", Integer, nullable=False, default=-1),
    Column("name", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(32)),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_wfe_run_metric_run_pk", "run_pk"),
    Index("ix_wfe_run_metric_name_at", "name", "at"),
)
