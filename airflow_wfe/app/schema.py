"""The state store's schema: where it stands, and migrating it (``wfe db check|upgrade``)."""

from __future__ import annotations

from airflow_wfe.app.models.workflows import SchemaStatus, SchemaUpgrade
from airflow_wfe.config import Settings, get_settings
from airflow_wfe.store.engine import get_engine, masked_url
from airflow_wfe.store.schema import HEAD_REVISION, current_revision, upgrade

__all__ = ["schema_status", "unreadable_store", "upgrade_schema"]


def schema_status(settings: Settings) -> SchemaStatus:
    """The revision of the store ``[wfe] store_conn`` names, against the one this package needs.

    Takes settings, not a context: checking must not open the store through the schema check that
    building a context's store would run.
    """
    url = settings.store_conn
    found = current_revision(get_engine(url))
    return SchemaStatus(
        url=masked_url(url), revision=found, expected=HEAD_REVISION, current=found == HEAD_REVISION
    )


def upgrade_schema(settings: Settings, revision: str = "head") -> SchemaUpgrade:
    """Migrate the store to ``revision`` (default: the newest)."""
    url = settings.store_conn
    before, after = upgrade(url, revision)
    return SchemaUpgrade(url=masked_url(url), before=before, after=after)


def unreadable_store(exc: Exception) -> str | None:
    """One line for a store the driver cannot read (not a database, corrupt), else None."""
    from sqlalchemy.exc import DatabaseError

    if not isinstance(exc, DatabaseError):
        return None
    from sqlalchemy.engine import make_url

    url = make_url(get_settings().store_conn)
    where = (
        f"file {url.database}"
        if url.get_backend_name() == "sqlite"
        else url.render_as_string(hide_password=True)
    )
    reason = str(exc.orig) if exc.orig is not None else type(exc).__name__
    return (
        f"the state store ({where}) cannot be read: {reason}; point [wfe] store_conn at an "
        "airflow-wfe store, or at a new file and run `wfe db upgrade`"
    )
