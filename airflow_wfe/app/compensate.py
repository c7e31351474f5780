"""Manual compensation: record the request, then have Airflow run the run's saga tasks again."""

from __future__ import annotations

from airflow_wfe.adapters.saga.manual import request_compensation
from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.governance import CompensationRequest

__all__ = ["compensate"]


def compensate(
    ctx: AppContext, dag_id: str, run_id: str, *, force: bool = False, reason: str | None = None
) -> CompensationRequest:
    """Compensate a FAILED run (or, with ``force``, a COMPLETED one) through its saga tasks.

    Raises:
        RunNotFoundError: the run was never recorded.
        StateError: the run is not FAILED (nor COMPLETED with ``force``), or its DAG declares no
            compensation.
        WfeError: the DAG is unknown to Airflow.
    """
    # The adapter records through the process's recorder, which is ctx.recorder for a context
    # built by AppContext.from_process().
    del ctx
    outcome = request_compensation(dag_id, run_id, force=force, reason=reason)
    return CompensationRequest.model_validate(outcome)
