"""The Airflow plugin: it only wires airflow-wfe into Airflow, it holds no logic.

Registered through the ``airflow.plugins`` entry point (``plugins/`` has a shim for deployments that
load plugins from a folder instead; never use both, Airflow drops duplicate plugins).

Every process that loads plugins imports this module, task processes included, so it imports no
FastAPI: the web surface is a :class:`~airflow_wfe.api.lazy.LazyASGI` that the API server builds on
its first request. The listener and the web surface are decided when Airflow instantiates the plugin (not at import):
neither when ``[wfe] enabled`` is false, nothing (and one log line saying why) on an Airflow without
plugin FastAPI apps and external views.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from airflow.plugins_manager import AirflowPlugin

from airflow_wfe.adapters.listeners.listener import get_listener
from airflow_wfe.api.lazy import LazyASGI

__all__ = ["MIN_AIRFLOW_FOR_WEB", "WfePlugin", "external_views", "listeners", "web_surface"]

log = logging.getLogger(__name__)

#: fastapi_apps came with Airflow 3.0, external views with destinations ``nav`` and ``dag_run``
#: (and their ``url_route``) with 3.1.
MIN_AIRFLOW_FOR_WEB: Final = (3, 1)
#: Where the sub-app is mounted; the API and the pages live below it.
URL_PREFIX: Final = "/wfe"


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__ as version
    from packaging.version import Version

    major, minor = (*Version(version).release, 0)[:2]
    return major, minor


def web_surface() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(fastapi_apps, external_views)`` for this deployment: empty when disabled or unsupported.

    A broken ``[wfe]`` section does not stop Airflow from loading its plugins: it is logged, and the
    web surface stays off until it is fixed.
    """
    from airflow_wfe.config import get_settings
    from airflow_wfe.exceptions import ConfigError

    try:
        enabled = get_settings().enabled
    except ConfigError as exc:
        log.error("airflow-wfe: REST API and pages not registered: %s", exc)
        return [], []
    if not enabled:
        return [], []
    found = _airflow_version()
    if found < MIN_AIRFLOW_FOR_WEB:
        wanted = ".".join(map(str, MIN_AIRFLOW_FOR_WEB))
        log.warning(
            "airflow-wfe: REST API and pages not registered: Airflow %s.%s has no plugin FastAPI "
            "apps with external views (needs %s or later); the CLI still works.",
            *found,
            wanted,
        )
        return [], []
    # The pages first: Airflow mounts in this order, and "/wfe" would also match "/wfe/ui/...".
    apps = [
        {
            "app": LazyASGI("airflow_wfe.ui.app:build_app"),
            "url_prefix": f"{URL_PREFIX}/ui",
            "name": "airflow-wfe pages",
        },
        {
            "app": LazyASGI("airflow_wfe.api.app:build_app"),
            "url_prefix": URL_PREFIX,
            "name": "airflow-wfe API",
        },
    ]
    return apps, external_views(_base_path())


def _base_path() -> str:
    """The path of ``[api] base_url`` (``""`` at the root): the UI does not prefix external views."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def external_views(base: str) -> list[dict[str, Any]]:
    """The navigation entry (an iframe on the overview) and the tab on every DAG-run page.

    ``{DAG_ID}`` and ``{RUN_ID}`` are filled in (URI-encoded) by the Airflow UI in the browser.
    """
    return [
        {
            "name": "Governed runs",
            "href": f"{base}{URL_PREFIX}/ui/",
            "destination": "nav",
            "url_route": "wfe",
            "category": "browse",
        },
        {
            "name": "Governance",
            "href": f"{base}{URL_PREFIX}/ui/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "wfe-run",
        },
    ]


class WfePlugin(AirflowPlugin):
    """Registers the listener that records governed runs, the REST API and the pages."""

    name = "airflow_wfe"

    def __init__(self) -> None:
        # Instance attributes: Airflow reads them from the instance, and removes invalid external
        # views from the list in place, so each instance owns its lists.
        self.listeners = listeners()
        self.fastapi_apps, self.external_views = web_surface()


def listeners() -> list[object]:
    """The listener, unless ``[wfe] enabled`` is false: then no hook runs in any process.

    A broken ``[wfe]`` section keeps the listener: each hook then says what is wrong (logged and
    counted), rather than governance going silently off.
    """
    from airflow_wfe.config import get_settings
    from airflow_wfe.exceptions import ConfigError

    try:
        enabled = get_settings().enabled
    except ConfigError:
        return [get_listener()]
    return [get_listener()] if enabled else []
