"""The REST API of airflow-wfe, mounted by the plugin in Airflow's API server under ``/wfe``.

``/wfe/api/v1/...`` serves the application layer's models (the JSON ``wfe ... --json`` prints)
behind Airflow's own authentication and DAG-level authorization. Importing this package imports
nothing heavy: the plugin mounts :class:`airflow_wfe.api.lazy.LazyASGI`, which loads
:func:`airflow_wfe.api.app.build_app` (FastAPI, Airflow's security module) on the first request.
"""
