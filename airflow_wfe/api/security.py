"""Airflow's authentication and DAG-level authorization for every route and page.

Airflow does not protect plugin routes, so each route declares one of the dependencies below, and a
test walks the OpenAPI schema to prove none is missing. Identity comes from Airflow itself
(:data:`GetUserDep`: the ``Authorization: Bearer`` JWT, else the ``_token`` cookie the Airflow UI and
its iframes send); rights come from the configured auth manager through
:func:`airflow.api_fastapi.app.get_auth_manager` (``AuthManagerDep`` reads ``request.app.state``,
which in a mounted sub-app is ours, not Airflow's).

Which right each kind of route needs:

* one run, its steps, decisions: read on that DAG's runs (``GET``, ``DagAccessEntity.RUN``);
* one run's audit events: read on that DAG's audit log (``GET``, ``DagAccessEntity.AUDIT_LOG``);
* acting on one run (compensate, answer a gate): edit on that DAG's runs (``PUT``, ``RUN``);
* lists and aggregates (runs, costs, DORA, report): only the DAGs the user may read, see
  :class:`DagScope`;
* the whole audit trail (verify, export without ``dag_id``): read on the audit log of every DAG
  (export with ``dag_id`` needs it on that DAG only); a checkpoint and an artifact rollback change
  what every DAG sees, so they need edit on the runs of every DAG.

These imports stay at module level on purpose: with ``from __future__ import annotations`` FastAPI
resolves ``GetUserDep`` from this module's globals (airflow3.md §2.6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, HTTPException, Query, Request  # noqa: TID253 - loaded only by the lazily built API app

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

__all__ = [
    "ANY_DAG",
    "EDIT_EVERY_DAG",
    "EDIT_RUN",
    "READ_DAG_OR_EVERY_AUDIT_LOG",
    "READ_EVERY_AUDIT_LOG",
    "READ_EVERY_DAG",
    "READ_RUN",
    "READ_RUN_AUDIT",
    "DagScope",
    "DagScopeDep",
    "GetUserDep",
    "dag_scope",
    "may_every_dag",
    "require_json",
    "requires_dag_or_every_dag",
    "requires_every_dag",
]

#: Read one DAG's runs (``dag_id`` from the path or the query).
READ_RUN: Final = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
#: Read one DAG's audit events (``dag_id`` from the path or the query).
READ_RUN_AUDIT: Final = Depends(requires_access_dag("GET", DagAccessEntity.AUDIT_LOG))
#: Act on one DAG's runs (``dag_id`` from the path).
EDIT_RUN: Final = Depends(requires_access_dag("PUT", DagAccessEntity.RUN))


#: A DAG id no DAG can have (Airflow's DAG ids hold no ``:``), so no per-DAG grant can name it:
#: a right on it is a right on every DAG.
ANY_DAG: Final = "airflow-wfe:any-dag"


def may_every_dag(user: BaseUser, method: ResourceMethod, access_entity: DagAccessEntity) -> bool:
    """Whether ``user`` has this right on every DAG, those Airflow no longer knows included.

    Not ``is_authorized_dag`` without details: Airflow reads that as "may list DAGs", and the FAB
    auth manager grants it to a user who may read any one DAG. Asked about a DAG id that no
    per-DAG grant can name, an auth manager says yes only for a right over all DAGs.
    """
    return bool(
        get_auth_manager().is_authorized_dag(
            method=method, access_entity=access_entity, details=DagDetails(id=ANY_DAG), user=user
        )
    )


def requires_every_dag(
    method: ResourceMethod, access_entity: DagAccessEntity
) -> Callable[[GetUserDep], None]:
    """A dependency: the right on every DAG at once (see :func:`may_every_dag`).

    Not ``requires_access_dag`` without a ``dag_id``: that one takes ``dag_id`` from the query
    string when a client adds one, which would narrow a trail-wide check to a DAG of its choosing.
    """

    def check(user: GetUserDep) -> None:
        if not may_every_dag(user, method, access_entity):
            raise HTTPException(403, "Forbidden")

    return check


def requires_dag_or_every_dag(
    method: ResourceMethod, access_entity: DagAccessEntity
) -> Callable[..., None]:
    """A dependency: the right on the DAG of the ``dag_id`` query parameter, or, without one, on
    every DAG (see :func:`may_every_dag`).

    Not ``requires_access_dag``: without a ``dag_id`` it asks the auth manager whether the user
    may *list* DAGs, which the FAB auth manager grants to a user with any one DAG.
    """

    def check(
        user: GetUserDep,
        dag_id: Annotated[str | None, Query(description="only this DAG")] = None,
    ) -> None:
        if not dag_id:
            allowed = may_every_dag(user, method, access_entity)
        else:
            allowed = get_auth_manager().is_authorized_dag(
                method=method, access_entity=access_entity, details=DagDetails(id=dag_id), user=user
            )
        if not allowed:
            raise HTTPException(403, "Forbidden")

    return check


#: Read one DAG's audit log (``?dag_id=``), or without one every DAG's (the export).
READ_DAG_OR_EVERY_AUDIT_LOG: Final = Depends(
    requires_dag_or_every_dag("GET", DagAccessEntity.AUDIT_LOG)
)
#: Read the audit log of every DAG (verify; export of the whole trail).
READ_EVERY_AUDIT_LOG: Final = Depends(requires_every_dag("GET", DagAccessEntity.AUDIT_LOG))
#: Read the runs of every DAG (artifacts and policies serve every DAG).
READ_EVERY_DAG: Final = Depends(requires_every_dag("GET", DagAccessEntity.RUN))
#: Act on the runs of every DAG (checkpoint, artifact rollback).
EDIT_EVERY_DAG: Final = Depends(requires_every_dag("PUT", DagAccessEntity.RUN))

_JSON_TYPES: Final = ("application/json",)


@dataclass(frozen=True)
class DagScope:
    """The DAGs a user may read: every one (``dag_ids`` is ``None``), or exactly ``dag_ids``.

    "Every one" is the auth manager's answer for the DAG resource as a whole, so it also covers
    runs of DAGs Airflow no longer knows; a user with per-DAG rights sees only those DAGs, as
    Airflow's auth manager lists them (:meth:`get_authorized_dag_ids`).
    """

    dag_ids: frozenset[str] | None

    @property
    def everything(self) -> bool:
        """Whether the user may read every DAG."""
        return self.dag_ids is None

    def allows(self, dag_id: str | None) -> bool:
        """Whether ``dag_id``'s records are visible (records of no DAG only with every DAG)."""
        if self.dag_ids is None:
            return True
        return dag_id is not None and dag_id in self.dag_ids

    def readable(self, asked: Iterable[str]) -> frozenset[str] | None:
        """The DAG set to filter a list by: ``asked`` (all must be readable), else the scope's
        own (``None``: every DAG; it may be empty, and the list then is too).

        Raises:
            HTTPException: 403 when ``asked`` names a DAG the user may not read.
        """
        wanted = frozenset(asked)
        if not wanted:
            return self.dag_ids
        if self.dag_ids is not None and not wanted <= self.dag_ids:
            raise HTTPException(403, "Forbidden: you may not read every DAG asked for")
        return wanted

    def narrow(self, asked: Iterable[str]) -> list[str] | None:
        """The DAG ids to ask the application layer for: ``asked`` within the scope, or ``None``
        for "all" (only when nothing was asked and the user may read every DAG).

        Raises:
            HTTPException: 403 when that leaves no DAG (the application layer reads an empty list
                as "all", so an empty answer cannot be asked for).
        """
        wanted = sorted(set(asked))
        if self.dag_ids is None:
            return wanted or None
        chosen = [d for d in wanted if d in self.dag_ids] if wanted else sorted(self.dag_ids)
        if not chosen:
            raise HTTPException(403, "Forbidden: you may read none of these DAGs")
        return chosen


def dag_scope(user: GetUserDep) -> DagScope:
    """The caller's :class:`DagScope`, from Airflow's auth manager."""
    if may_every_dag(user, "GET", DagAccessEntity.RUN):
        return DagScope(None)
    return DagScope(frozenset(get_auth_manager().get_authorized_dag_ids(user=user, method="GET")))


DagScopeDep = Annotated[DagScope, Depends(dag_scope)]


def require_json(request: Request) -> None:
    """CSRF guard of every action: the body must be declared JSON.

    The Airflow UI authenticates by a cookie, which a browser also attaches to a form another site
    posts here (``SameSite=Lax`` already drops it on cross-site POSTs; this holds even where a proxy
    rewrites cookies). HTML forms cannot send ``application/json``, and a script on another origin
    can only send it after a CORS preflight that Airflow does not grant.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise HTTPException(415, "Actions take a JSON body: send Content-Type: application/json")
