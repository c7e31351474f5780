"""Users of Airflow's in-process API app for the REST and page tests (SimpleAuthManager).

``admin`` does all, ``user`` acts, ``viewer`` reads; ``outsider`` is a viewer whom the auth manager
lets read ``open_dag`` only, the way a DAG-level auth manager would.
"""

from __future__ import annotations

from typing import Any

import pytest

ROLES = [("admin", "admin"), ("user", "user"), ("viewer", "viewer"), ("outsider", "viewer")]


def users_with_an_outsider(
    patch: pytest.MonkeyPatch, manager: Any, open_dag: str, all_dags: set[str] | None = None
) -> dict[str, str]:
    """Restrict ``outsider`` to ``open_dag`` on ``manager`` and return a JWT per user.

    ``all_dags``: when given, the DAG ids the others may list (``get_authorized_dag_ids``), for
    pages that ask the auth manager for the whole list rather than DAG by DAG.
    """
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    allowed = manager.is_authorized_dag

    def is_authorized_dag(*, method: str, user: Any, **kwargs: Any) -> bool:
        if user.get_name() == "outsider":
            details = kwargs.get("details")
            return method == "GET" and details is not None and details.id == open_dag
        return bool(allowed(method=method, user=user, **kwargs))

    patch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    if all_dags is not None:

        def authorized_dag_ids(*, user: Any, method: str = "GET", **kwargs: Any) -> set[str]:
            return {open_dag} if user.get_name() == "outsider" else set(all_dags)

        patch.setattr(manager, "get_authorized_dag_ids", authorized_dag_ids)
    return {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
        for name, role in ROLES
    }
