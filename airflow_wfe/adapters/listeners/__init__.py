"""Airflow listeners: the adapter from Airflow's events to the recorder."""
