"""The Airflow plugin: it only wires airflow-wfe into Airflow, it holds no logic.

Registered through the ``airflow.plugins`` entry point (``plugins/`` has a shim for deployments that
load plugins from a folder instead; never use both, Airflow drops duplicate plugins).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_wfe.adapters.listeners.listener import get_listener

__all__ = ["WfePlugin"]


class WfePlugin(AirflowPlugin):
    """Registers the listener that records governed runs."""

    name = "airflow_wfe"
    listeners = [get_listener()]  # noqa: RUF012 - Airflow declares it as a plain attribute
