"""The reconciliation rule: when a step's recorded state is behind what Airflow reports at run end.

In the core, apart from the recorder, because the listener checks it before any write and is
imported by every process that loads plugins: this module costs nothing to import.
"""

from __future__ import annotations

from typing import Final

from airflow_wfe.core.states import StepState

__all__ = ["RECONCILABLE", "needs_reconciling"]

#: Where reconciliation may still move a step from: SUCCEEDED and later belong to compensation, and
#: a terminal state is Airflow's last word already.
RECONCILABLE: Final = frozenset({StepState.PENDING, StepState.RUNNING, StepState.RETRYING})


def needs_reconciling(current: StepState | None, target: StepState) -> bool:
    """The reconciliation rule: whether a step recorded at ``current`` is behind the end state
    ``target`` Airflow reports. :meth:`Recorder.reconcile_step` plans by it inside its transaction;
    callers may check it first against a read of every step, to skip writes that would be no-ops."""
    return current is None or (current is not target and current in RECONCILABLE)
