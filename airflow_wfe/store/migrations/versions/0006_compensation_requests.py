"""Manual compensation requests as a typed fact (no longer a prefix of a transition's reason).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_compensation_request",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("transition_pk", _Id, nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("force", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_compensation_request"),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["wfe_run.id"],
            name="fk_wfe_compensation_request_run_pk_wfe_run",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transition_pk"],
            ["wfe_transition.id"],
            name="fk_wfe_compensation_request_transition_pk_wfe_transition",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_wfe_compensation_request_run_pk", "wfe_compensation_request", ["run_pk"])


def downgrade() -> None:
    op.drop_index("ix_wfe_compensation_request_run_pk", table_name="wfe_compensation_request")
    op.drop_table("wfe_compensation_request")
