"""Partitioned audit chains: a chain column on events, checkpoints and archives; signed tree heads.

Events and checkpoints are keyed by (chain, seq) instead of seq: each partition of DAG ids has its own
chain, numbered from 1 (``core/audit/partitions.py``). Every existing row belongs to the one chain a
store had so far, ``main``, which keeps its name, its head row and its signatures: an existing trail
verifies as before, and a store configured with one partition goes on writing exactly that chain.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _chain() -> sa.Column[str]:
    return sa.Column("chain", sa.String(32), nullable=False, server_default="main")


def upgrade() -> None:
    for table in ("wfe_audit_event", "wfe_audit_checkpoint"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(_chain())
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", ["chain", "seq"])
    with op.batch_alter_table("wfe_audit_archive") as batch:
        batch.add_column(_chain())
    op.create_table(
        "wfe_audit_tree",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("heads", sa.Text, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_audit_tree"),
    )


def downgrade() -> None:
    op.drop_table("wfe_audit_tree")
    with op.batch_alter_table("wfe_audit_archive") as batch:
        batch.drop_column("chain")
    for table in ("wfe_audit_checkpoint", "wfe_audit_event"):
        # Only an unpartitioned trail fits the old layout (one chain, keyed by seq).
        op.execute(sa.text(f"DELETE FROM {table} WHERE chain <> 'main'"))
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", ["seq"])
            batch.drop_column("chain")
    op.execute(sa.text("DELETE FROM wfe_audit_head WHERE chain <> 'main'"))
