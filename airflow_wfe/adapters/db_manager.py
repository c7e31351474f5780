"""``airflow db migrate`` migrates the wfe state store too, through Airflow's own extension point.

Airflow 3 runs every "external DB manager" (a :class:`~airflow.utils.db_manager.BaseDBManager`
subclass named in a provider's ``db-managers`` or in ``[database] external_db_managers``) after its
own migrations: ``initdb`` on a fresh metadata database, ``upgradedb`` otherwise, and
``check_migration`` for ``airflow db check-migrations``. :class:`WfeDBManager` answers those calls
for the store ``[wfe] store_conn`` names, which may or may not be Airflow's own database: Airflow's
base class would run Alembic against Airflow's connection, so every entry point is overridden and
goes through :func:`airflow_wfe.store.schema.upgrade` (the same migrations, advisory lock and
version table as ``wfe db upgrade``).

``airflow db reset`` does not drop the store (``supports_table_dropping`` is False): the audit
trail outlives a metadata database rebuilt from scratch. The store's migrations only move forward:
:meth:`WfeDBManager.downgrade` refuses with a clear error (restore a backup to go back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException
from airflow.utils.db_manager import BaseDBManager

from airflow_wfe.config import get_settings
from airflow_wfe.store import schema
from airflow_wfe.store.engine import get_engine, masked_url
from airflow_wfe.store.schema import HEAD_REVISION, VERSION_TABLE, current_revision, upgrade
from airflow_wfe.store.tables import metadata

__all__ = ["WfeDBManager"]

#: The Alembic scripts of the store (Airflow's validation reads ``env.py`` there).
_MIGRATIONS = Path(schema.__file__).parent / "migrations"


class WfeDBManager(BaseDBManager):
    """The wfe state store as one of Airflow's external databases (see the module docstring)."""

    metadata = metadata
    migration_dir = str(_MIGRATIONS)
    alembic_file = ""
    version_table_name = VERSION_TABLE
    supports_table_dropping = False

    @staticmethod
    def _url() -> str:
        return get_settings().store_conn

    def get_current_revision(self) -> str | None:
        """The store's revision (None while it has no tables)."""
        return current_revision(get_engine(self._url()))

    def check_migration(self) -> bool:
        """Whether the store is at the revision this package reads and writes."""
        return self.get_current_revision() == HEAD_REVISION

    def upgradedb(
        self,
        to_revision: str | None = None,
        from_revision: str | None = None,
        show_sql_only: bool = False,
        use_migration_files: bool = False,
    ) -> None:
        """Migrate the store to ``to_revision`` (default: the newest)."""
        if show_sql_only:
            raise AirflowException(
                "the wfe store does not print its migrations as SQL; run `wfe db upgrade` instead"
            )
        before, after = upgrade(self._url(), to_revision or "head")
        where = masked_url(self._url())
        if before == after:
            self.log.info("wfe state store %s is at revision %s", where, after)
        else:
            self.log.info(
                "wfe state store %s upgraded: %s -> %s", where, before or "(empty)", after
            )

    def initdb(self, use_migration_files: bool = False) -> None:
        """A fresh Airflow database: create (or bring up to date) the store."""
        self.upgradedb(use_migration_files=use_migration_files)

    def create_db_from_orm(self) -> None:
        """The store is always built by its migrations (one path to every revision)."""
        self.upgradedb()

    def drop_tables(self, connection: Any) -> None:
        """Never: ``airflow db reset`` leaves the store and its audit trail alone."""

    def downgrade(
        self, to_revision: str, from_revision: str | None = None, show_sql_only: bool = False
    ) -> None:
        """Refused: the store's migrations move forward only (restore a backup to go back)."""
        raise AirflowException(
            f"the wfe state store is not downgraded by `airflow db downgrade` (asked for "
            f"{to_revision}); restore a backup of {masked_url(self._url())} instead"
        )
