"""Gate decisions and approvals; the cost ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfe_decision",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("step_id", sa.String(250), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("policies", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_decision"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["wfe_run.id"], name="fk_wfe_decision_run_pk_wfe_run", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_wfe_decision_run_pk_id", "wfe_decision", ["run_pk", "id"])
    op.create_table(
        "wfe_cost_entry",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("run_pk", _Id, nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("step_id", sa.String(250), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wfe_cost_entry"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["wfe_run.id"], name="fk_wfe_cost_entry_run_pk_wfe_run", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_wfe_cost_entry_dag_id_at", "wfe_cost_entry", ["dag_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_wfe_cost_entry_dag_id_at", table_name="wfe_cost_entry")
    op.drop_table("wfe_cost_entry")
    op.drop_index("ix_wfe_decision_run_pk_id", table_name="wfe_decision")
    op.drop_table("wfe_decision")
