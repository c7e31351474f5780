"""The audit trail: hash-chained events, the signed chain head, checkpoints, archives, sync cursors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "wfe_audit_event",
        sa.Column("seq", _Id, autoincrement=False, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("run_id", sa.String(250)),
        sa.Column("step_id", sa.String(250)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_wfe_audit_event"),
    )
    op.create_index("ix_wfe_audit_event_dag_id_run_id", "wfe_audit_event", ["dag_id", "run_id"])
    op.create_index("ix_wfe_audit_event_at", "wfe_audit_event", ["at"])
    head = op.create_table(
        "wfe_audit_head",
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("seq", _Id, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(32)),
        sa.Column("key_id", sa.String(64)),
        sa.Column("signature", sa.Text),
        sa.PrimaryKeyConstraint("chain", name="pk_wfe_audit_head"),
    )
    # The head exists from the start, so the first writers lock a row instead of racing to insert it.
    op.bulk_insert(head, [{"chain": "main", "seq": 0, "hash": _GENESIS, "at": ""}])
    op.create_table(
        "wfe_audit_checkpoint",
        sa.Column("seq", _Id, autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_wfe_audit_checkpoint"),
    )
    op.create_table(
        "wfe_audit_archive",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("first_seq", _Id, nullable=False),
        sa.Column("last_seq", _Id, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(32)),
        sa.Column("key_id", sa.String(64)),
        sa.Column("signature", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_audit_archive"),
    )
    op.create_table(
        "wfe_sync_cursor",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("position", _Id, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_wfe_sync_cursor"),
    )


def downgrade() -> None:
    op.drop_table("wfe_sync_cursor")
    op.drop_table("wfe_audit_archive")
    op.drop_table("wfe_audit_checkpoint")
    op.drop_table("wfe_audit_head")
    op.drop_index("ix_wfe_audit_event_at", table_name="wfe_audit_event")
    op.drop_index("ix_wfe_audit_event_dag_id_run_id", table_name="wfe_audit_event")
    op.drop_table("wfe_audit_event")
