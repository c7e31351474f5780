"""Alembic environment for the airflow-wfe state store.

Runs only through :func:`airflow_wfe.store.schema.upgrade`, which hands over an open connection, so
there is no alembic.ini and no URL handling here. The version table has its own name so the store can
share a database (or even a schema) with Airflow, whose own table is ``alembic_version``.
"""

from __future__ import annotations

from alembic import context

from airflow_wfe.store.schema import VERSION_TABLE
from airflow_wfe.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
