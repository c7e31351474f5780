"""Every YAML workflow in ``dags/workflows/`` becomes a governed DAG: this one call is all it takes.

A broken file only loses its own workflow; its problems (file, line, key) are logged, and
``wfe validate dags/workflows/*.yaml`` shows them before you deploy.
"""

from __future__ import annotations

from airflow_wfe import load_workflows

load_workflows("workflows")
