"""Dependencies every route shares: the application context and who acts.

The context is the process's (:meth:`AppContext.from_process`: the cached settings, store, emitter
and recorder the listeners of the API server also use), looked up per request so a test that resets
the runtime gets a fresh one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.security import GetUserDep
from airflow_wfe.app.context import AppContext

__all__ = ["ActorDep", "ContextDep", "get_actor", "get_context"]


def get_context() -> AppContext:
    """The application context of this process."""
    return AppContext.from_process()


def get_actor(user: GetUserDep) -> str:
    """Who a write through the API is attributed to in the store and the audit trail."""
    return f"user:{user.get_id()}"


ContextDep = Annotated[AppContext, Depends(get_context)]
ActorDep = Annotated[str, Depends(get_actor)]
