"""Provider info: how Airflow learns about the ``[wfe]`` config section and the package itself.

Registered through the ``apache_airflow_provider`` entry point. Airflow validates this dict against its
provider schema and does not catch errors in discovery, so a test pins it against that schema.
"""

from __future__ import annotations

from typing import Any

from airflow_wfe.config import OPTIONS
from airflow_wfe.version import __version__

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Describe airflow-wfe to Airflow's providers manager."""
    options: dict[str, dict[str, Any]] = {}
    for option in OPTIONS:
        entry: dict[str, Any] = {
            "description": option.description,
            "version_added": "0.1.0",
            "type": option.type,
            "example": option.example,
            "default": option.default,
        }
        if option.sensitive:
            entry["sensitive"] = True
        options[option.name] = entry
    return {
        # Must equal the canonical distribution name, or Airflow's provider discovery raises.
        "package-name": "airflow-wfe",
        "name": "airflow-wfe",
        "description": "Workflow engineering for Apache Airflow: explicit run state, saga "
        "compensation, policy gates, a tamper-evident audit trail and StatsD metrics.",
        "versions": [__version__],
        # `airflow wfe ...` (Airflow 3.2+ reads this key; older versions ignore it).
        "cli": ["airflow_wfe.cli.airflow_commands.get_cli_commands"],
        # `airflow db migrate` (and the Helm chart's migration job) migrates the wfe store too.
        "db-managers": ["airflow_wfe.adapters.db_manager.WfeDBManager"],
        "config": {
            "wfe": {
                "description": "airflow-wfe: governed runs, state store, policies and audit.",
                "options": options,
            }
        },
    }
