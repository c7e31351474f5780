"""Reports the broken workflow files of ``workflows/`` as this DAG file's import error.

It defines no DAG: Airflow deactivates every DAG of a file with an import error, so the loader
(wfe_folder_with_a_broken_workflow.py) and this reporter are separate files.
"""

from __future__ import annotations

from airflow_wfe import report_workflow_errors

report_workflow_errors("workflows")
