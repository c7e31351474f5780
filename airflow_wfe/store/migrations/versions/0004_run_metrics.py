"""Business metrics recorded by steps, stored with their run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_run_metric",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("step_id", sa.String(250)),
        sa.Column("map_index", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(32)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_run_metric"),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["wfe_run.id"],
            name="fk_wfe_run_metric_run_pk_wfe_run",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_wfe_run_metric_run_pk", "wfe_run_metric", ["run_pk"])
    op.create_index("ix_wfe_run_metric_name_at", "wfe_run_metric", ["name", "at"])


def downgrade() -> None:
    op.drop_index("ix_wfe_run_metric_name_at", table_name="wfe_run_metric")
    op.drop_index("ix_wfe_run_metric_run_pk", table_name="wfe_run_metric")
    op.drop_table("wfe_run_metric")
