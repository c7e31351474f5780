"""The app factory of the REST API, mounted by the plugin at ``/wfe`` in Airflow's API server.

Everything lives under ``/wfe/api/v1`` (a version in the path, so a v2 can live beside it), with
its OpenAPI schema at ``/wfe/api/v1/openapi.json`` and Swagger UI at ``/wfe/api/v1/docs``. Built
on the first request by :class:`~airflow_wfe.api.lazy.LazyASGI`, never in task processes.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.errors import install_error_handlers
from airflow_wfe.api.headers import SecurityHeaders
from airflow_wfe.api.routes import (
    actions,
    approvals,
    artifacts,
    audit,
    costs,
    dora,
    report,
    runs,
)
from airflow_wfe.version import __version__

__all__ = ["API_PREFIX", "build_app"]

#: Where the routes live inside the mounted app (so ``/wfe/api/v1/...`` in the API server).
API_PREFIX: Final = "/api/v1"

_DESCRIPTION = """\
Governed Airflow runs: their states, steps, compensations, gate decisions, costs, DORA figures and
tamper-evident audit trail, as `wfe ... --json` prints them.

Authentication is Airflow's: `Authorization: Bearer <JWT from POST /auth/token>`, or the `_token`
cookie of the Airflow UI. Each route also checks the caller's rights on the DAGs concerned through
Airflow's auth manager. Errors are `{"code", "message", "detail"}`.
"""


def build_app() -> FastAPI:
    """A new API app (the plugin builds one per API server process)."""
    app = FastAPI(
        title="airflow-wfe",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    for module in (runs, approvals, audit, costs, dora, report, artifacts, actions):
        app.include_router(module.router, prefix=API_PREFIX)
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    return app
