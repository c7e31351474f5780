"""Indexes behind the run list's keyset pagination: newest first, overall and per DAG.

``GET /wfe/api/v1/runs`` and the runs page read ``ORDER BY created_at DESC, id DESC`` and continue
after the last row of the previous page (``(created_at, id) < cursor``). Without an index each page
sorts the whole table; with one a page is an index range scan.
The second index serves the same read narrowed to one DAG or to the few DAGs a user may read.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_wfe_run_created_at_id", "wfe_run", ["created_at", "id"])
    op.create_index("ix_wfe_run_dag_id_created_at_id", "wfe_run", ["dag_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_wfe_run_dag_id_created_at_id", table_name="wfe_run")
    op.drop_index("ix_wfe_run_created_at_id", table_name="wfe_run")
