"""How Airflow's task-instance and run states read in airflow-wfe's terms."""

from __future__ import annotations

from typing import Final

from airflow_wfe.core.states import StepState

__all__ = ["END_REASONS", "STEP_STATE_OF_TI", "TIMED_OUT", "describe_error", "run_end_reason"]

#: How a reason says that time ran out (a step's ``execution_timeout``, a run's ``dagrun_timeout``):
#: the first word of the reason, so ``wfe runs show`` and queries on reasons tell it from a failure.
TIMED_OUT: Final = "TIMED_OUT"

#: Airflow TI states that are facts about a finished step. ``removed`` (the task left the DAG) and
#: unfinished states are left alone: reconciliation only records what Airflow decided.
STEP_STATE_OF_TI: Final[dict[str, StepState]] = {
    "success": StepState.SUCCEEDED,
    "failed": StepState.FAILED,
    "skipped": StepState.SKIPPED,
    "upstream_failed": StepState.UPSTREAM_FAILED,
    "up_for_retry": StepState.RETRYING,
}

#: Airflow's ``msg`` of the DAG-run listeners, as a reason a person reads.
END_REASONS: Final[dict[str, str]] = {
    "success": "all tasks finished; Airflow marked the run success",
    "task_failure": "a task failed; Airflow marked the run failed",
    "timed_out": f"{TIMED_OUT}: the run exceeded its dagrun_timeout; Airflow failed it",
    "all_tasks_deadlocked": "no task could be scheduled (deadlock); Airflow failed the run",
}

_MAX_REASON = 500


def run_end_reason(msg: str | None) -> str:
    """A readable reason for a run's end from the listener's ``msg``."""
    if not msg:
        return "Airflow ended the run"
    return END_REASONS.get(msg, f"Airflow: {msg}")


def describe_error(error: object, *, timeout: object = None) -> str:
    """``Type: message`` of a task error, masked by Airflow's secrets masker and bounded in size.

    An execution timeout (Airflow's ``AirflowTaskTimeout``) reads ``TIMED_OUT: ...`` with the
    task's ``execution_timeout``, rather than Airflow's "Timeout, PID: 18077".
    """
    if error is None:
        return "task failed"
    if type(error).__name__ == "AirflowTaskTimeout":
        limit = f" of {timeout}" if timeout else ""
        return f"{TIMED_OUT}: the task ran past its execution_timeout{limit} and was stopped"
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    try:
        from airflow.sdk._shared.secrets_masker import redact

        text = str(redact(text))
    except Exception:  # noqa: BLE001 - without the masker, never store the message itself
        kind = type(error).__name__ if isinstance(error, BaseException) else "error"
        text = f"{kind} (message withheld: Airflow's secrets masker is unavailable)"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
