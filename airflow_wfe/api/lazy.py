"""An ASGI app that builds the real one on its first request.

Airflow imports plugin modules in every process, task processes included, and those never serve
HTTP. Building the FastAPI app at import would load FastAPI and Airflow's API security module there
(~0.55 s per task process, see airflow3.md §2.6), so the plugin mounts this wrapper instead and the
API server pays the import once, on the first request to ``/wfe``. This module imports nothing
beyond the standard library.

Once built, the objects the API server holds at that moment (Airflow's app, its modules, ours) are
moved out of the garbage collector's sight with :func:`gc.freeze`. They live as long as the
process, yet every full collection walked all of them: ~600,000 objects, 150-300 ms on a busy
2-core machine, once every few requests of a page that builds a few thousand objects (a run with
200 steps), which made that page's p99 five times its median. Frozen objects are still freed
when their last reference goes; only reference cycles among them stay until the process ends.

Trade-off: Starlette does not forward ``lifespan`` events to mounted apps that are not FastAPI
instances, so the real app must need no lifespan (it does not: its state is built on demand).
"""

from __future__ import annotations

import gc
import importlib
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AIRFLOW_APP_SCOPE_KEY", "ASGIApp", "LazyASGI"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the wrapper leaves Airflow's own (root) app in the request scope, before the mounted app
#: replaces ``scope["app"]`` with itself: actions forward to Airflow's public REST API through it.
AIRFLOW_APP_SCOPE_KEY = "airflow_wfe.airflow_app"


class LazyASGI:
    """Mountable ASGI app: imports ``"module:factory"`` and calls the factory on first use.

    Args:
        factory_path: ``"package.module:function"``; the function takes no argument and returns
            an ASGI app.
    """

    def __init__(self, factory_path: str) -> None:
        self.factory_path = factory_path
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # What /api/v2/plugins shows for the app.
        return f"LazyASGI({self.factory_path!r})"

    def load(self) -> ASGIApp:
        """The real app, built once (thread-safe: the API server may serve from several threads)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    module_name, _, attribute = self.factory_path.partition(":")
                    factory = getattr(importlib.import_module(module_name), attribute)
                    self._app = factory()
                    gc.collect()
                    gc.freeze()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # pragma: no cover - Starlette does not send it to mounts
            return
        scope.setdefault(AIRFLOW_APP_SCOPE_KEY, scope.get("app"))
        await self.load()(scope, receive, send)
