"""Workflow specs: the YAML contract, its loader and its static checks (no Airflow imports here)."""
