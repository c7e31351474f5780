"""The state store's schema: where it stands, and migrating it (``wfe db check|upgrade``)."""

from __future__ import annotations

from airflow_wfe.app.models.workflows import SchemaStatus, SchemaUpgrade
from airflow_wfe.config import Settings
from airflow_wfe.store.engine import get_engine, masked_url
from airflow_wfe.store.schema import HEAD_REVISION, current_revision, upgrade

__all__ = ["schema_status", "upgrade_schema"]


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
