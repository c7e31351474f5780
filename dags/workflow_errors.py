"""Reports broken YAML workflows of ``workflows/`` as this DAG file's import error in Airflow.

It defines no DAG on purpose: Airflow deactivates every DAG of a file with an import error, so the
loader (workflows.py) and this reporter live in separate files, and one broken workflow never stops
the others.
"""

from __future__ import annotations

from airflow_wfe import report_workflow_errors

report_workflow_errors("workflows")
