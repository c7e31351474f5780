"""Which compiled DAGs came from which spec version, in this process.

The listener reads it when a task of a YAML workflow starts, to record the spec's version and content
hash with the run. It is filled at parse time, which happens in every process that runs a task
(Airflow re-parses the DAG file there), so no database lookup is needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["SpecInfo", "register_spec", "spec_info"]


@dataclass(frozen=True)
class SpecInfo:
    """Provenance of a DAG compiled from a workflow file."""

    dag_id: str
    version: str
    content_hash: str
    path: str


_SPECS: dict[str, SpecInfo] = {}
_LOCK = threading.Lock()


def register_spec(info: SpecInfo) -> None:
    """Remember where a DAG came from (the latest parse wins)."""
    with _LOCK:
        _SPECS[info.dag_id] = info


def spec_info(dag_id: str) -> SpecInfo | None:
    """Provenance of ``dag_id`` when this process compiled it from a workflow file."""
    with _LOCK:
        return _SPECS.get(dag_id)
