"""A DAGs folder whose workflows include a broken file: the others must still become DAGs."""

from __future__ import annotations

from airflow_wfe import load_workflows

load_workflows("workflows")
