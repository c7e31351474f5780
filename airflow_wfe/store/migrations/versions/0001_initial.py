"""Runs, steps and their transitions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_run",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("run_type", sa.String(50)),
        sa.Column("dag_version_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_run"),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_wfe_run_dag_id_run_id"),
    )
    op.create_table(
        "wfe_step",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("step_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("try_number", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_step"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["wfe_run.id"], name="fk_wfe_step_run_pk_wfe_run", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_pk", "step_id", "map_index", name="uq_wfe_step_run_step_map"),
    )
    op.create_table(
        "wfe_transition",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("step_pk", _Id),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("try_number", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_transition"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["wfe_run.id"], name="fk_wfe_transition_run_pk_wfe_run", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["step_pk"],
            ["wfe_step.id"],
            name="fk_wfe_transition_step_pk_wfe_step",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_wfe_transition_run_pk_id", "wfe_transition", ["run_pk", "id"])


def downgrade() -> None:
    op.drop_index("ix_wfe_transition_run_pk_id", table_name="wfe_transition")
    op.drop_table("wfe_transition")
    op.drop_table("wfe_step")
    op.drop_table("wfe_run")
