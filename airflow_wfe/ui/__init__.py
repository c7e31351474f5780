"""Pages of airflow-wfe inside the Airflow UI: an overview and a run page, server-rendered.

Mounted by the plugin at ``/wfe/ui`` (a :class:`~airflow_wfe.api.lazy.LazyASGI`, so Jinja2 and
FastAPI load only in the API server, on the first page asked for), linked from Airflow's navigation
and shown as a tab of the DAG-run page (``external_views``). Same authentication and rights as the
REST API; every value goes through Jinja2's autoescape.
"""
