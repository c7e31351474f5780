"""Reading versioned artifacts: one version, the active one, the list, a history, the runs using one.

The writing half and the rollback rule are in :mod:`.artifacts`; this half only reads, in a reader's
connection, and explains a miss (which versions exist, or how to activate one).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Row, func, select

from airflow_wfe.core.artifact_records import (
    ArtifactActivation,
    ArtifactHistory,
    ArtifactSummary,
    ArtifactUse,
    ArtifactVersion,
)
from airflow_wfe.exceptions import ArtifactNotFoundError
from airflow_wfe.store import rows
from airflow_wfe.store.rows import utc
from airflow_wfe.store.tables import (
    artifact_activation_table,
    artifact_table,
    run_artifact_table,
    run_table,
)

if TYPE_CHECKING:
    from airflow_wfe.store.base import StoreBase

__all__ = ["VERSION_COLUMNS", "ArtifactReads"]

_SHOWN_VERSIONS: Final = 5


VERSION_COLUMNS = (
    artifact_table.c.id,
    artifact_table.c.name,
    artifact_table.c.version,
    artifact_table.c.content_hash,
    artifact_table.c.media_type,
    func.length(artifact_table.c.content).label("size"),
    artifact_table.c.created_at,
    artifact_table.c.created_by,
)


class ArtifactReads:
    """The reading half of :class:`~airflow_wfe.store.artifacts.ArtifactRegistry`.

    Args:
        store: the state store whose database holds the artifact tables (its private write path
            and reader connections; built by the store itself, never by its callers).
    """

    def __init__(self, store: StoreBase) -> None:
        self._store = store

    # -- reading -----------------------------------------------------------------------------

    def get(self, name: str, version: str) -> ArtifactVersion:
        """One version, with its content.

        Raises:
            ArtifactNotFoundError: no such artifact or version.
        """
        with self._store._read() as connection:
            return rows.artifact_version(
                self._find(connection, name, version, content=True), with_content=True
            )

    def active(self, name: str) -> ArtifactVersion:
        """The active version, with its content.

        Raises:
            ArtifactNotFoundError: no such artifact, or none of its versions was ever activated.
        """
        query = (
            select(*VERSION_COLUMNS, artifact_table.c.content)
            .join(
                artifact_activation_table,
                artifact_activation_table.c.artifact_pk == artifact_table.c.id,
            )
            .where(artifact_activation_table.c.name == name)
            .order_by(artifact_activation_table.c.id.desc())
            .limit(1)
        )
        with self._store._read() as connection:
            row = connection.execute(query).first()
            if row is None:
                raise self._not_found(connection, name, None)
        return rows.artifact_version(row, with_content=True)

    def list(self) -> builtins.list[ArtifactSummary]:
        """Every artifact, by name, with its active version and when it was last activated."""
        counts = select(artifact_table.c.name, func.count().label("versions")).group_by(
            artifact_table.c.name
        )
        latest = (
            select(func.max(artifact_activation_table.c.id))
            .group_by(artifact_activation_table.c.name)
            .scalar_subquery()
        )
        actives = (
            select(
                artifact_activation_table.c.name,
                artifact_activation_table.c.at,
                artifact_table.c.version,
            )
            .join(artifact_table, artifact_table.c.id == artifact_activation_table.c.artifact_pk)
            .where(artifact_activation_table.c.id.in_(latest))
        )
        with self._store._read() as connection:
            count_rows = connection.execute(counts).all()
            active_rows = {row.name: row for row in connection.execute(actives)}
        summaries = []
        for row in sorted(count_rows, key=lambda r: str(r.name)):
            active = active_rows.get(row.name)
            summaries.append(
                ArtifactSummary(
                    name=row.name,
                    active_version=None if active is None else active.version,
                    version_count=int(row.versions),
                    last_activated_at=None if active is None else utc(active.at),
                )
            )
        return summaries

    def history(self, name: str) -> ArtifactHistory:
        """Versions (oldest first) and activations (in order) of ``name``.

        Raises:
            ArtifactNotFoundError: no such artifact.
        """
        with self._store._read() as connection:
            found = connection.execute(
                select(*VERSION_COLUMNS)
                .where(artifact_table.c.name == name)
                .order_by(artifact_table.c.created_at, artifact_table.c.id)
            ).all()
            if not found:
                raise ArtifactNotFoundError(name)
            activations = connection.execute(
                select(
                    artifact_table.c.version,
                    artifact_activation_table.c.at,
                    artifact_activation_table.c.actor,
                    artifact_activation_table.c.reason,
                )
                .select_from(artifact_activation_table)
                .join(
                    artifact_table, artifact_table.c.id == artifact_activation_table.c.artifact_pk
                )
                .where(artifact_activation_table.c.name == name)
                .order_by(artifact_activation_table.c.id)
            ).all()
        return ArtifactHistory(
            name=name,
            active_version=activations[-1].version if activations else None,
            versions=tuple(rows.artifact_version(row) for row in found),
            activations=tuple(
                ArtifactActivation(version=a.version, at=utc(a.at), actor=a.actor, reason=a.reason)
                for a in activations
            ),
        )

    def runs_using(self, name: str, version: str | None = None) -> builtins.list[ArtifactUse]:
        """Runs that used ``name`` (any version, or only ``version``), in the order of first use.

        Raises:
            ArtifactNotFoundError: no such artifact or version.
        """
        query = (
            select(
                run_table.c.dag_id,
                run_table.c.run_id,
                artifact_table.c.version,
                run_artifact_table.c.used_at,
            )
            .join(artifact_table, artifact_table.c.id == run_artifact_table.c.artifact_pk)
            .join(run_table, run_table.c.id == run_artifact_table.c.run_pk)
            .where(artifact_table.c.name == name)
            .order_by(run_artifact_table.c.used_at, run_table.c.id, artifact_table.c.id)
        )
        if version is not None:
            query = query.where(artifact_table.c.version == version)
        with self._store._read() as connection:
            used = connection.execute(query).all()
            if not used:
                # Nothing used it: still tell a typo apart from an unused artifact.
                if version is None:
                    self._require_name(connection, name)
                else:
                    self._find(connection, name, version)
        return [
            ArtifactUse(dag_id=r.dag_id, run_id=r.run_id, version=r.version, used_at=utc(r.used_at))
            for r in used
        ]

    def used_by_run(self, dag_id: str, run_id: str) -> builtins.list[ArtifactUse]:
        """The artifact versions a run used, in the order of first use (empty for an unknown run)."""
        query = (
            select(
                artifact_table.c.name,
                artifact_table.c.version,
                run_artifact_table.c.used_at,
            )
            .join(artifact_table, artifact_table.c.id == run_artifact_table.c.artifact_pk)
            .join(run_table, run_table.c.id == run_artifact_table.c.run_pk)
            .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
            .order_by(run_artifact_table.c.used_at, artifact_table.c.id)
        )
        with self._store._read() as connection:
            used = connection.execute(query).all()
        return [
            ArtifactUse(
                dag_id=dag_id, run_id=run_id, version=r.version, used_at=utc(r.used_at), name=r.name
            )
            for r in used
        ]

    def _find(
        self, connection: Connection, name: str, version: str, *, content: bool = False
    ) -> Row[Any]:
        columns = (*VERSION_COLUMNS, artifact_table.c.content) if content else VERSION_COLUMNS
        row = connection.execute(
            select(*columns).where(
                artifact_table.c.name == name, artifact_table.c.version == version
            )
        ).first()
        if row is None:
            raise self._not_found(connection, name, version)
        return row

    @staticmethod
    def _require_name(connection: Connection, name: str) -> None:
        found = connection.execute(
            select(artifact_table.c.id).where(artifact_table.c.name == name).limit(1)
        ).first()
        if found is None:
            raise ArtifactNotFoundError(name)

    @staticmethod
    def _not_found(connection: Connection, name: str, version: str | None) -> ArtifactNotFoundError:
        """The most helpful not-found error: which versions exist, or how to activate one."""
        known = [
            str(v)
            for v in connection.execute(
                select(artifact_table.c.version)
                .where(artifact_table.c.name == name)
                .order_by(artifact_table.c.created_at.desc(), artifact_table.c.id.desc())
                .limit(_SHOWN_VERSIONS + 1)
            ).scalars()
        ]
        if not known:
            return ArtifactNotFoundError(
                name, version, problem="no such artifact in the state store"
            )
        shown = ", ".join(known[:_SHOWN_VERSIONS]) + (
            ", ..." if len(known) > _SHOWN_VERSIONS else ""
        )
        if version is None:
            return ArtifactNotFoundError(
                name, problem=f"no version is active yet; activate one of: {shown} (newest first)"
            )
        return ArtifactNotFoundError(
            name, version, problem=f"no version {version!r}; known: {shown} (newest first)"
        )
