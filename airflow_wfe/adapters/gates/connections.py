"""Airflow connections as SQLAlchemy URLs, for gates that read data or samples with SQL.

A provider's hook is not needed for SQLite or PostgreSQL: the connection's fields are enough.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sqlalchemy_url"]


def sqlalchemy_url(connection: Any) -> Any:
    """The connection as a SQLAlchemy URL (SQLite: ``host`` is the file; others: host, port,
    login, password, schema as database)."""
    from sqlalchemy.engine import URL

    kind = (connection.conn_type or "").lower()
    if kind == "sqlite":
        return URL.create("sqlite", database=connection.host or connection.schema)
    drivers = {
        "postgres": "postgresql+psycopg",
        "postgresql": "postgresql+psycopg",
        "mysql": "mysql",
    }
    return URL.create(
        drivers.get(kind, kind),
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or None,
        port=connection.port or None,
        database=connection.schema or None,
    )
