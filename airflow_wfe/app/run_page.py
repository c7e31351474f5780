"""The audit part of a run's page: every event hash-checked, only the newest kept.

:func:`airflow_wfe.app.audit.run_story` returns every event of a run as a model, which is what
``wfe audit show`` and the REST API print. A page shows the newest few hundred: building models
for the rest cost most of the page's time, and (objects that outlive a request's young
collections are what make Python's full collections run) made the API server's full garbage
collections several times more frequent. This reads the run's events as a stream, checks each
one's hash and keeps only the newest ``keep``.
"""

from __future__ import annotations

from collections import deque

from pydantic import Field

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.audit import AuditEvent
from airflow_wfe.app.models.base import ResponseModel
from airflow_wfe.core.audit.events import SealedEvent, body_hash
from airflow_wfe.exceptions import RunNotFoundError

__all__ = ["AuditTail", "audit_tail"]


class AuditTail(ResponseModel):
    """The newest events of one run, with what is known of all of them."""

    dag_id: str = Field(description="the run's DAG id")
    run_id: str = Field(description="the run id")
    total: int = Field(description="how many events the run has")
    hashes_match: bool = Field(description="every event's body still hashes to its stored hash")
    events: list[AuditEvent] = Field(description="the newest events, in chain order")


def audit_tail(ctx: AppContext, dag_id: str, run_id: str, keep: int) -> AuditTail:
    """The run's newest ``keep`` events; the hash check and the count cover all of them.

    Raises:
        RunNotFoundError: the trail holds no event of that run (as ``run_story``).
    """
    newest: deque[SealedEvent] = deque(maxlen=keep)
    total, matching = 0, True
    for event in ctx.store.audit_events(dag_id=dag_id, run_id=run_id):
        total += 1
        matching = matching and body_hash(event.body) == event.hash
        newest.append(event)
    if not total:
        raise RunNotFoundError(dag_id, run_id)
    return AuditTail(
        dag_id=dag_id,
        run_id=run_id,
        total=total,
        hashes_match=matching,
        events=[AuditEvent(**e.content(), hash=e.hash) for e in newest],
    )
