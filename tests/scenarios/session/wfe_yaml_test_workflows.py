"""Test-only YAML workflows turned into DAGs by the same one call users write."""

from __future__ import annotations

from airflow_wfe import load_workflows

load_workflows("yaml_workflows")
