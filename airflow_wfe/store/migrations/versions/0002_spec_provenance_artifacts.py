"""Spec provenance on runs; versioned artifacts, their activations and their use by runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("wfe_run") as batch:
        batch.add_column(sa.Column("spec_version", sa.String(64)))
        batch.add_column(sa.Column("spec_hash", sa.String(64)))
    op.create_table(
        "wfe_artifact",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(250), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_artifact"),
        sa.UniqueConstraint("name", "version", name="uq_wfe_artifact_name_version"),
    )
    op.create_table(
        "wfe_artifact_activation",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("artifact_pk", _Id, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_artifact_activation"),
        sa.ForeignKeyConstraint(
            ["artifact_pk"],
            ["wfe_artifact.id"],
            name="fk_wfe_artifact_activation_artifact_pk_wfe_artifact",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_wfe_artifact_activation_name_id", "wfe_artifact_activation", ["name", "id"])
    op.create_table(
        "wfe_run_artifact",
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("artifact_pk", _Id, nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "artifact_pk", name="pk_wfe_run_artifact"),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["wfe_run.id"],
            name="fk_wfe_run_artifact_run_pk_wfe_run",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["artifact_pk"],
            ["wfe_artifact.id"],
            name="fk_wfe_run_artifact_artifact_pk_wfe_artifact",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("wfe_run_artifact")
    op.drop_index("ix_wfe_artifact_activation_name_id", table_name="wfe_artifact_activation")
    op.drop_table("wfe_artifact_activation")
    op.drop_table("wfe_artifact")
    with op.batch_alter_table("wfe_run") as batch:
        batch.drop_column("spec_hash")
        batch.drop_column("spec_version")
