"""Every metric name airflow-wfe emits, in one place (the docs and the exporter mapping follow it).

Plain StatsD has no tags, so the varying part of a name (a state) is a name segment, lower-cased,
the way Airflow names ``ti.finish.<dag>.<task>.<state>``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "LISTENER_ERRORS",
    "RUN_DURATION",
    "RUN_STATE",
    "STEP_STATE",
    "TRANSITIONS_REFUSED",
    "run_state",
    "step_state",
]

#: Counter per run transition: ``wfe.run.state.<state>`` (e.g. ``wfe.run.state.completed``).
RUN_STATE: Final = "wfe.run.state"
#: Counter per step transition: ``wfe.step.state.<state>`` (``wfe.step.state.retrying`` counts retries).
STEP_STATE: Final = "wfe.step.state"
#: Timer: from CREATED to the run's end state, in milliseconds.
RUN_DURATION: Final = "wfe.run.duration"
#: Counter: a listener or hook failed to record something (the run itself carried on).
LISTENER_ERRORS: Final = "wfe.listener.errors"
#: Counter: the state machine refused a reported transition.
TRANSITIONS_REFUSED: Final = "wfe.transition.refused"


def run_state(state: str) -> str:
    """Name of the counter for a run entering ``state``."""
    return f"{RUN_STATE}.{state.lower()}"


def step_state(state: str) -> str:
    """Name of the counter for a step entering ``state``."""
    return f"{STEP_STATE}.{state.lower()}"
