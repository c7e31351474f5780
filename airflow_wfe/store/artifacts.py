"""The versioned-artifact registry: immutable, content-addressed versions and which one is active.

An artifact is anything a run reads and that should be reviewable and revertible on its own: a prompt
template, a creative, a configuration file. Each version is immutable and named by its content
(:func:`version_for`), so registering the same bytes twice yields the same version and a version id
says exactly what a run used. Which version is *active* is a separate, append-only history of
activations; rolling back is one more activation, so the history keeps the rollback too.

Rollback rule: the activation history is read as a stack of versions. Activating a version that is
already active changes nothing; activating the version just below the top of the stack (which is what
:meth:`ArtifactRegistry.rollback` does) pops the top; activating any other version pushes it. A
rollback activates the version just below the top. So after activations A, B, C a rollback activates B,
a second one activates A, and a third one fails, because nothing was active before A. Activating the
previous version by hand counts as a rollback too: the outcome is the same, so the history reads the
same.

Writers run in one transaction each (``BEGIN IMMEDIATE`` on SQLite, the name's rows locked ``FOR
UPDATE`` on PostgreSQL), and losing the insert race on a version re-reads the winner's row.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from airflow_wfe.core.artifact_records import (
    VERSION_LENGTH,
    ArtifactActivation,
    ArtifactHistory,
    ArtifactSummary,
    ArtifactUse,
    ArtifactVersion,
    to_jsonable,
    version_for,
)
from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.exceptions import ArtifactConflictError, ArtifactError, ArtifactNotFoundError
from airflow_wfe.store import rows
from airflow_wfe.store.artifact_reads import VERSION_COLUMNS, ArtifactReads
from airflow_wfe.store.base import run_pk
from airflow_wfe.store.tables import (
    artifact_activation_table,
    artifact_table,
    run_artifact_table,
    run_table,
)

__all__ = [
    "NAME_PATTERN",
    "ArtifactActivation",
    "ArtifactError",
    "ArtifactHistory",
    "ArtifactNotFoundError",
    "ArtifactRegistry",
    "ArtifactSummary",
    "ArtifactUse",
    "ArtifactVersion",
    "to_jsonable",
    "version_for",
]

#: What an artifact name may look like: path-like, so names can be grouped (``prompts/summary``).
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*")
_MAX_NAME = 250
_MAX_MEDIA_TYPE = 100


def _stack(versions: Iterable[str]) -> builtins.list[str]:
    """Replay an activation history into the stack of the module docstring's rollback rule."""
    stack: builtins.list[str] = []
    for version in versions:
        if stack and stack[-1] == version:
            continue
        if len(stack) >= 2 and stack[-2] == version:
            stack.pop()
        else:
            stack.append(version)
    return stack


class ArtifactRegistry(ArtifactReads):
    """Registers, activates, rolls back and tracks the use of artifact versions.

    Reached as ``store.artifacts`` (the :class:`~airflow_wfe.store.contract.ArtifactStore` part of
    the contract); the store builds it over its own write path.

    Example::

        registry = get_runtime_store().artifacts
        v = registry.register("prompts/summary", b"Summarise: {text}", actor="alice")
        registry.activate("prompts/summary", v.version, actor="alice", reason="first cut")
        registry.active("prompts/summary").content
    """

    # -- writing -----------------------------------------------------------------------------

    def register(
        self, name: str, content: bytes, *, media_type: str = "text/plain", actor: str
    ) -> ArtifactVersion:
        """Store ``content`` as a version of ``name``; the same content again returns that version.

        Registering does not activate: see :meth:`activate`.

        Raises:
            ArtifactError: the name or media type is not acceptable.
        """
        _check_name(name)
        if not media_type or len(media_type) > _MAX_MEDIA_TYPE or not media_type.isprintable():
            raise ArtifactError(
                name, f"media type {media_type!r} must be 1-{_MAX_MEDIA_TYPE} printable characters"
            )
        content_hash = hashlib.sha256(content).hexdigest()
        version = content_hash[:VERSION_LENGTH]  # == version_for(content)

        def attempt(connection: Connection) -> ArtifactVersion:
            row = connection.execute(
                select(*VERSION_COLUMNS, artifact_table.c.content).where(
                    artifact_table.c.name == name, artifact_table.c.version == version
                )
            ).first()
            if row is not None:
                if row.content_hash != content_hash:
                    raise ArtifactError(
                        name,
                        f"version {version} already holds other content (SHA-256 prefix "
                        f"collision: {row.content_hash} vs {content_hash}); nothing registered",
                    )
                return rows.artifact_version(row, with_content=True)
            now = datetime.now(UTC)
            self._audit(
                connection,
                EventType.ARTIFACT_REGISTERED,
                actor,
                {
                    "name": name,
                    "version": version,
                    "content_hash": content_hash,
                    "media_type": media_type,
                    "size": len(content),
                },
            )
            connection.execute(
                insert(artifact_table).values(
                    name=name,
                    version=version,
                    content_hash=content_hash,
                    content=content,
                    media_type=media_type,
                    created_at=now,
                    created_by=actor,
                )
            )
            return ArtifactVersion(
                name=name,
                version=version,
                content_hash=content_hash,
                media_type=media_type,
                size=len(content),
                created_at=now,
                created_by=actor,
                content=content,
            )

        return self._store._write(f"{name}@{version}", attempt)

    def activate(
        self, name: str, version: str, *, actor: str, reason: str | None = None
    ) -> ArtifactVersion:
        """Make ``version`` the active version of ``name``; a no-op when it already is.

        Raises:
            ArtifactNotFoundError: no such artifact or version.
        """

        def attempt(connection: Connection) -> ArtifactVersion:
            self._lock(connection, name)
            row = self._find(connection, name, version, content=True)
            history = self._activations(connection, name)
            if not history or history[-1] != version:
                self._insert_activation(connection, name, row.id, actor, reason)
                self._audit(
                    connection,
                    EventType.ARTIFACT_ACTIVATED,
                    actor,
                    {
                        "name": name,
                        "version": version,
                        "previous": history[-1] if history else None,
                        "reason": reason,
                    },
                )
            return rows.artifact_version(row, with_content=True)

        return self._store._write(f"{name}@{version}", attempt)

    def rollback(self, name: str, *, actor: str, reason: str | None = None) -> ArtifactVersion:
        """Re-activate the version that was active before the current one (see the module
        docstring for the exact rule); returns the version now active.

        Raises:
            ArtifactNotFoundError: no such artifact, or it has no active version.
            ArtifactError: nothing was active before the current version.
        """

        def attempt(connection: Connection) -> ArtifactVersion:
            self._lock(connection, name)
            history = self._activations(connection, name)
            if not history:
                raise self._not_found(connection, name, None)
            stack = _stack(history)
            current = stack[-1]
            if len(stack) < 2:
                raise ArtifactConflictError(
                    name,
                    f"nothing to roll back to: no version was active before {current}; "
                    "activate another version instead",
                )
            target = self._find(connection, name, stack[-2], content=True)
            note = f"rollback from {current}" + (f": {reason}" if reason else "")
            self._insert_activation(connection, name, target.id, actor, note)
            self._audit(
                connection,
                EventType.ARTIFACT_ACTIVATED,
                actor,
                {
                    "name": name,
                    "version": target.version,
                    "previous": current,
                    "reason": note,
                    "rollback": True,
                },
            )
            return rows.artifact_version(target, with_content=True)

        return self._store._write(f"{name} (rollback)", attempt)

    def record_use(self, dag_id: str, run_id: str, name: str, version: str) -> None:
        """Remember that the run used this version (recording it again changes nothing).

        Raises:
            RunNotFoundError: the run is not in the store (its DAG is not governed, or it has not
                started yet).
            ArtifactNotFoundError: no such artifact or version.
        """

        def attempt(connection: Connection) -> None:
            run = run_pk(connection, dag_id, run_id)
            artifact_pk = self._find(connection, name, version).id
            known = connection.execute(
                select(run_artifact_table.c.run_pk).where(
                    run_artifact_table.c.run_pk == run,
                    run_artifact_table.c.artifact_pk == artifact_pk,
                )
            ).first()
            if known is None:
                connection.execute(
                    insert(run_artifact_table).values(
                        run_pk=run, artifact_pk=artifact_pk, used_at=datetime.now(UTC)
                    )
                )
                self._audit(
                    connection,
                    EventType.ARTIFACT_USED,
                    "worker",
                    {"name": name, "version": version},
                    dag_id=dag_id,
                    run_id=run_id,
                    versions={f"artifact:{name}": version},
                )

        self._store._write(f"{dag_id}/{run_id} uses {name}@{version}", attempt)

    def use_pinned(self, dag_id: str, run_id: str, name: str) -> ArtifactVersion:
        """The version of ``name`` this run is pinned to, with its content, its use recorded.

        A run reads the version that was active when it started (the run's CREATED time), so an
        activation or a rollback made while it runs applies to later runs only; once the run used
        a version of ``name`` it keeps reading that one. A name first activated after the run
        started gives its active version. One transaction: the choice and its record.

        Raises:
            RunNotFoundError: the run is not in the store (its DAG is not governed).
            ArtifactNotFoundError: no such artifact, or none of its versions was ever activated.
        """

        def attempt(connection: Connection) -> ArtifactVersion:
            run = connection.execute(
                select(run_table.c.id, run_table.c.created_at).where(
                    run_table.c.dag_id == dag_id, run_table.c.run_id == run_id
                )
            ).first()
            if run is None:
                run_pk(connection, dag_id, run_id)  # raises RunNotFoundError
            assert run is not None
            columns = (*VERSION_COLUMNS, artifact_table.c.content)
            used = connection.execute(
                select(*columns)
                .join(run_artifact_table, run_artifact_table.c.artifact_pk == artifact_table.c.id)
                .where(run_artifact_table.c.run_pk == run.id, artifact_table.c.name == name)
                .order_by(run_artifact_table.c.used_at)
                .limit(1)
            ).first()
            if used is not None:
                return rows.artifact_version(used, with_content=True)
            activations = (
                select(*columns)
                .join(
                    artifact_activation_table,
                    artifact_activation_table.c.artifact_pk == artifact_table.c.id,
                )
                .where(artifact_activation_table.c.name == name)
                .order_by(artifact_activation_table.c.id.desc())
                .limit(1)
            )
            row = connection.execute(
                activations.where(artifact_activation_table.c.at <= run.created_at)
            ).first()
            if row is None:
                row = connection.execute(activations).first()
            if row is None:
                raise self._not_found(connection, name, None)
            try:
                # A savepoint: another task of the run may record the same (pinned) version first.
                with connection.begin_nested():
                    connection.execute(
                        insert(run_artifact_table).values(
                            run_pk=run.id, artifact_pk=row.id, used_at=datetime.now(UTC)
                        )
                    )
            except IntegrityError:
                return rows.artifact_version(row, with_content=True)
            self._audit(
                connection,
                EventType.ARTIFACT_USED,
                "worker",
                {"name": name, "version": row.version, "pinned_at_run_start": True},
                dag_id=dag_id,
                run_id=run_id,
                versions={f"artifact:{name}": str(row.version)},
            )
            return rows.artifact_version(row, with_content=True)

        return self._store._write(f"{dag_id}/{run_id} uses {name}", attempt)

    # -- helpers -----------------------------------------------------------------------------

    def _audit(
        self,
        connection: Connection,
        type_: EventType,
        actor: str,
        payload: dict[str, Any],
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        versions: dict[str, str] | None = None,
    ) -> None:
        """Write the event in the same transaction as the change it describes."""
        self._store.audit.append(
            connection,
            [
                AuditEvent(
                    type=type_,
                    actor=actor,
                    at=datetime.now(UTC),
                    dag_id=dag_id,
                    run_id=run_id,
                    payload=payload,
                    versions=versions or {},
                )
            ],
        )

    @staticmethod
    def _lock(connection: Connection, name: str) -> None:
        # Serialises activations of one name on PostgreSQL (SQLite's BEGIN IMMEDIATE already does),
        # so a rollback decides on the history it appends to. Ordered to avoid lock-order deadlocks.
        connection.execute(
            select(artifact_table.c.id)
            .where(artifact_table.c.name == name)
            .order_by(artifact_table.c.id)
            # NO KEY UPDATE: tasks recording a use (a foreign key to these rows) are not blocked.
            .with_for_update(key_share=True)
        ).all()

    @staticmethod
    def _activations(connection: Connection, name: str) -> builtins.list[str]:
        return [
            str(version)
            for version in connection.execute(
                select(artifact_table.c.version)
                .select_from(artifact_activation_table)
                .join(
                    artifact_table, artifact_table.c.id == artifact_activation_table.c.artifact_pk
                )
                .where(artifact_activation_table.c.name == name)
                .order_by(artifact_activation_table.c.id)
            ).scalars()
        ]

    @staticmethod
    def _insert_activation(
        connection: Connection, name: str, artifact_pk: int, actor: str, reason: str | None
    ) -> None:
        connection.execute(
            insert(artifact_activation_table).values(
                name=name, artifact_pk=artifact_pk, at=datetime.now(UTC), actor=actor, reason=reason
            )
        )


def _check_name(name: str) -> None:
    if len(name) > _MAX_NAME or not NAME_PATTERN.fullmatch(name):
        raise ArtifactError(
            name,
            f"not a valid name: use at most {_MAX_NAME} characters, letters, digits and _ . - /, "
            "starting with a letter or a digit (e.g. prompts/summary.v1)",
        )
