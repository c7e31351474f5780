"""Celery settings for Airflow's CeleryExecutor: Airflow's own, plus the listener's warm-up.

Under CeleryExecutor a worker's pool processes are forked from the ``airflow celery worker`` process,
and each task process is forked from a pool process. Nothing there is an Airflow ``Job``, so the
listener's ``on_starting`` warm-up (:func:`airflow_wfe.adapters.listeners.process.prepare`) never
runs, and every task process imported the recorder, the store and its database driver at its
first hook (about 0.3 s on a loaded 2-core machine with a PostgreSQL store). Pointing Airflow at
this module makes the worker load them once, before its pool forks, through Celery's own
``worker_init`` signal::

    [celery]
    celery_config_options = airflow_wfe.adapters.celery_config.CELERY_CONFIG

(``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``; docs/deployment.md). The configuration itself is
exactly Airflow's default one: the worker reads it only to build its Celery app, so a deployment
with its own Celery settings keeps them and imports this module from its own instead.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init  # type: ignore[import-untyped]

from airflow_wfe.adapters.listeners import process

__all__ = ["CELERY_CONFIG"]

#: Airflow's default Celery configuration, unchanged.
CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


def _warm_up(**_: Any) -> None:
    """In the worker's main process, before the pool forks (never raises)."""
    process.prepare_worker()


worker_init.connect(_warm_up, weak=False)
