"""From workflow specs to Airflow DAGs (imports Airflow lazily, inside the functions)."""
