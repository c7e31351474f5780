"""The application layer: the use cases every face (CLI, REST API, UI pages) calls.

Each use case takes an :class:`~airflow_wfe.app.context.AppContext` and returns a typed, frozen
pydantic model from :mod:`airflow_wfe.app.models`; a face prints or serializes that model and adds
nothing of its own, so ``wfe runs show --json`` and ``GET /wfe/api/v1/runs/{dag_id}/{run_id}`` are
the same JSON by construction. The shapes are documented in docs/json.md.

Modules, one concern each: ``context`` (what a use case works with), ``runs`` (list and detail),
``audit``, ``decisions``, ``costs``, ``dora``, ``report``, ``compensate``, ``artifacts``,
``policies`` (dry runs).
"""
