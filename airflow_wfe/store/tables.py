"""The state store's tables: runs, steps, their transitions, artifacts and the audit trail.

The store has its own ``MetaData`` with a naming convention, so constraint names are stable across
SQLite and PostgreSQL and migrations can refer to them. Every table is prefixed ``wfe_`` because the
store may share a database with Airflow's metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    "audit_archive_table",
    "audit_checkpoint_table",
    "audit_event_table",
    "audit_head_table",
    "audit_tree_table",
    "compensation_request_table",
    "cost_entry_table",
    "decision_table",
    "metadata",
    "run_artifact_table",
    "run_metric_table",
    "run_table",
    "step_table",
    "sync_cursor_table",
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
    # The run list pages newest first by keyset, overall and per DAG (migration 0007).
    Index("ix_wfe_run_created_at_id", "created_at", "id"),
    Index("ix_wfe_run_dag_id_created_at_id", "dag_id", "created_at", "id"),
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

#: The audit trail: one hash chain over every event. ``seq`` is assigned by the writer holding the
#: chain head, so it has no gaps; ``body`` is the canonical JSON the hash covers, and the other columns
#: are a copy of its fields for querying (verification checks they still agree).
audit_event_table = Table(
    "wfe_audit_event",
    metadata,
    # The partition's chain (``main`` for an unpartitioned store): see core/audit/partitions.py.
    Column("chain", String(32), primary_key=True, server_default="main"),
    Column("seq", _Id, primary_key=True, autoincrement=False),
    # ISO 8601 UTC text of fixed width: compares and sorts as text on every backend.
    Column("at", String(32), nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor", String(250), nullable=False),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("step_id", String(250)),
    Column("body", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_wfe_audit_event_dag_id_run_id", "dag_id", "run_id"),
    Index("ix_wfe_audit_event_at", "at"),
)

#: The chain head, one row: every append locks it, so concurrent writers take turns and never fork
#: the chain; it is signed after every append, so a truncated tail cannot go unnoticed.
audit_head_table = Table(
    "wfe_audit_head",
    metadata,
    Column("chain", String(32), primary_key=True),
    Column("seq", _Id, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("algorithm", String(32)),
    Column("key_id", String(64)),
    Column("signature", Text),
)

#: Signed checkpoints: periodic (every N events), on demand, and where an archive ends.
audit_checkpoint_table = Table(
    "wfe_audit_checkpoint",
    metadata,
    Column("chain", String(32), primary_key=True, server_default="main"),
    Column("seq", _Id, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", Text, nullable=False),
    Column("reason", String(32), nullable=False),
)

#: Events moved out to archive files: the chain in the database goes on from ``last_hash``.
audit_archive_table = Table(
    "wfe_audit_archive",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("chain", String(32), nullable=False, server_default="main"),
    Column("first_seq", _Id, nullable=False),
    Column("last_seq", _Id, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("algorithm", String(32)),
    Column("key_id", String(64)),
    Column("signature", Text),
)

#: Signed tree heads: every partition's head (chain, seq, hash) at one moment, under one signature.
audit_tree_table = Table(
    "wfe_audit_tree",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    #: Canonical JSON ``[[chain, seq, hash], ...]`` in partition order (what ``root`` is over).
    Column("heads", Text, nullable=False),
    Column("root", String(64), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", Text, nullable=False),
    Column("reason", String(32), nullable=False),
)

#: How far an import from another source has got (Airflow's own audit log, by its row id).
sync_cursor_table = Table(
    "wfe_sync_cursor",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("position", _Id, nullable=False),
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

#: Gate decisions and approvals: every one a recorded fact with its reasons and policy versions.
decision_table = Table(
    "wfe_decision",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", String(250), nullable=False),
    # "policy" (the engine's decision) or "approval" (a person's answer, a timeout default).
    Column("kind", String(16), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list
    Column("policies", Text, nullable=False),  # JSON {name: version}
    Column("details", Text, nullable=False),  # JSON: approval requirements, responder, comment
    Column("actor", String(250), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_wfe_decision_run_pk_id", "run_pk", "id"),
)

#: The cost ledger: what steps spent, per run, with the DAG and its tags copied for budget windows.
cost_entry_table = Table(
    "wfe_cost_entry",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), nullable=False),
    Column("dag_id", String(250), nullable=False),
    Column("step_id", String(250), nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("detail", Text),
    Column("tags", Text, nullable=False),  # JSON list of the DAG's tags, for per-team budgets
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_wfe_cost_entry_dag_id_at", "dag_id", "at"),
)

#: Manual compensation requests (``wfe compensate``): a typed fact, written in the transaction of the
#: run's move to COMPENSATING (``transition_pk``), which is how the saga tells a request still open
#: (that move is the run's latest) from a failure's compensation.
compensation_request_table = Table(
    "wfe_compensation_request",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_pk", _Id, ForeignKey("wfe_run.id", ondelete="CASCADE"), nullable=False),
    Column(
        "transition_pk", _Id, ForeignKey("wfe_transition.id", ondelete="CASCADE"), nullable=False
    ),
    Column("actor", String(250), nullable=False),
    Column("force", Boolean, nullable=False),
    Column("reason", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_wfe_compensation_request_run_pk", "run_pk"),
)
