# For deployments that load plugins from a folder instead of the package's entry point. Copy this file
# into $AIRFLOW_HOME/plugins only when airflow-wfe's entry points are NOT installed, never both.
from airflow_wfe.plugin import WfePlugin  # noqa: F401
