"""Every metric name airflow-wfe emits, in one place (docs/metrics.md and the exporter mapping follow it).

Plain StatsD has no tags, so the varying part of a name is a name segment, lower-cased, the way Airflow
names ``ti.finish.<dag>.<task>.<state>``. Segments come in a fixed order: first the bounded ones (a
state, an outcome, a policy kind), then the DAG id *last*, because a DAG id may itself contain dots and
the exporter mapping can then take "everything after" as the ``dag_id`` label. Step ids never appear
in names (task-group ids contain dots and step counts are unbounded); with ``[wfe] statsd_tags`` on,
every metric also carries DogStatsD tags (``dag_id``, ``step``, ...), and ``wfe report`` gives the
per-step view from the store.

A test checks that every constant here is documented in docs/metrics.md and mapped by
docker/statsd/statsd_mapping.yml; add a name here, there and there together.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ALL_METRICS",
    "APPROVAL_WAIT",
    "AUDIT_EVENTS",
    "BUSINESS",
    "COMPENSATION_DURATION",
    "COMPENSATION_RUN",
    "COMPENSATION_STEP",
    "COST_BUDGET",
    "COST_SPENT",
    "DORA_CHANGE_FAILURE_RATE",
    "DORA_DEPLOYMENT_FREQUENCY",
    "DORA_LEAD_TIME",
    "DORA_MTTR",
    "GATE_DECISION",
    "LISTENER_DURATION",
    "LISTENER_ERRORS",
    "RUN_DURATION",
    "RUN_STATE",
    "SPOOL_FULL",
    "SPOOL_REPLAYED",
    "SPOOL_SUPERSEDED",
    "SPOOL_WRITTEN",
    "STEP_DURATION",
    "STEP_RETRIES",
    "STEP_STATE",
    "STORE_TIMEOUT",
    "TRANSITIONS_REFUSED",
    "MetricSpec",
    "approval_wait",
    "business",
    "compensation_duration",
    "compensation_run",
    "compensation_step",
    "cost_budget",
    "cost_spent",
    "dora",
    "gate_decision",
    "listener_duration",
    "run_duration",
    "run_state",
    "segment",
    "step_duration",
    "step_state",
    "store_timeout",
]

# -- runs and steps ------------------------------------------------------------------------------

#: Counter per run transition: ``wfe.run.state.<state>`` (e.g. ``wfe.run.state.completed``).
RUN_STATE: Final = "wfe.run.state"
#: Counter per step transition: ``wfe.step.state.<state>``.
STEP_STATE: Final = "wfe.step.state"
#: Counter of retries: a step going RUNNING → RETRYING (the ``retrying`` step-state counter).
STEP_RETRIES: Final = "wfe.step.state.retrying"
#: Timer, ms: from CREATED to the run's end state: ``wfe.run.duration.<end_state>.<dag_id>``.
RUN_DURATION: Final = "wfe.run.duration"
#: Timer, ms: from RUNNING to the step's end state: ``wfe.step.duration.<end_state>``.
STEP_DURATION: Final = "wfe.step.duration"

# -- compensation --------------------------------------------------------------------------------

#: Counter per run-level saga event: ``wfe.compensation.run.<started|compensated|failed>``.
COMPENSATION_RUN: Final = "wfe.compensation.run"
#: Counter per undone step: ``wfe.compensation.step.<started|compensated|failed>``.
COMPENSATION_STEP: Final = "wfe.compensation.step"
#: Timer, ms: COMPENSATING to its outcome: ``wfe.compensation.duration.<compensated|failed>``.
COMPENSATION_DURATION: Final = "wfe.compensation.duration"

# -- gates, approvals, cost ----------------------------------------------------------------------

#: Counter per gate decision: ``wfe.gate.decision.<policy>.<allow|deny|needs_approval>``.
GATE_DECISION: Final = "wfe.gate.decision"
#: Timer, ms: how long a run waited for a human: ``wfe.approval.wait.<approved|rejected|expired>``.
APPROVAL_WAIT: Final = "wfe.approval.wait"
#: Gauge: cost spent by a DAG in the budget window: ``wfe.cost.spent.<dag_id>``.
COST_SPENT: Final = "wfe.cost.spent"
#: Gauge: the DAG's budget for that window: ``wfe.cost.budget.<dag_id>``.
COST_BUDGET: Final = "wfe.cost.budget"
#: Counter per data-quality verdict: ``wfe.quality.decision.<allow|deny|warn>``.
QUALITY_DECISION: Final = "wfe.quality.decision"
#: Gauge: expectations the DAG's last checked data failed: ``wfe.quality.failed.<dag_id>``.
QUALITY_FAILED: Final = "wfe.quality.failed"
#: Counter per canary check: ``wfe.canary.decision.<promote|hold|rollback>``.
CANARY_DECISION: Final = "wfe.canary.decision"
#: Counter per rollout wave check: ``wfe.wave.decision.<continue|stop>``.
WAVE_DECISION: Final = "wfe.wave.decision"

# -- audit and the harness itself ----------------------------------------------------------------

#: Counter: audit events written (``incr(AUDIT_EVENTS, n)`` per committed batch).
AUDIT_EVENTS: Final = "wfe.audit.events"
#: Counter: a listener or hook failed to record something (the run itself carried on).
LISTENER_ERRORS: Final = "wfe.listener.errors"
#: Timer, ms: how long a listener hook held its caller (task or scheduler loop):
#: ``wfe.listener.duration.<hook>`` (e.g. ``on_task_instance_running``).
LISTENER_DURATION: Final = "wfe.listener.duration"
#: Counter: the state machine refused a reported transition.
TRANSITIONS_REFUSED: Final = "wfe.transition.refused"

# -- bounded waits and the local spool (docs/reliability.md) -------------------------------------

#: Counter: a wait on the store ran out its bound: ``wfe.store.timeout.<connect|statement|lock>``.
STORE_TIMEOUT: Final = "wfe.store.timeout"
#: Counter: a transition the store could not take was written to the local spool.
SPOOL_WRITTEN: Final = "wfe.spool.written"
#: Counter: a spooled transition was replayed into the store.
SPOOL_REPLAYED: Final = "wfe.spool.replayed"
#: Counter: a spooled transition was dropped at replay: the store already held a later state.
SPOOL_SUPERSEDED: Final = "wfe.spool.superseded"
#: Counter: a transition was lost because the spool was at its size bound.
SPOOL_FULL: Final = "wfe.spool.full"

# -- DORA and business metrics -------------------------------------------------------------------

#: Gauge, seconds: mean lead time for changes of a deployment DAG: ``wfe.dora.lead_time.<dag_id>``.
DORA_LEAD_TIME: Final = "wfe.dora.lead_time"
#: Gauge, per day: successful deployments: ``wfe.dora.deployment_frequency.<dag_id>``.
DORA_DEPLOYMENT_FREQUENCY: Final = "wfe.dora.deployment_frequency"
#: Gauge, seconds: mean time to restore: ``wfe.dora.mttr.<dag_id>``.
DORA_MTTR: Final = "wfe.dora.mttr"
#: Gauge, 0..1: change failure rate: ``wfe.dora.change_failure_rate.<dag_id>``.
DORA_CHANGE_FAILURE_RATE: Final = "wfe.dora.change_failure_rate"
#: Gauge: a business metric a step recorded: ``wfe.business.<metric>.<dag_id>`` (e.g. ``roi``).
BUSINESS: Final = "wfe.business"


class MetricSpec:
    """What the docs and the mapping test need to know about one metric name.

    Attributes:
        name: the constant's value (the name's fixed prefix).
        kind: ``counter``, ``timer`` or ``gauge``.
        segments: the variable segments appended to ``name``, in order.
    """

    __slots__ = ("kind", "name", "segments")

    def __init__(self, name: str, kind: str, *segments: str) -> None:
        self.name = name
        self.kind = kind
        self.segments = segments

    def example(self) -> str:
        """A concrete name, e.g. ``wfe.run.duration.completed.my_dag``."""
        samples = {
            "state": "completed",
            "end_state": "completed",
            "outcome": "compensated",
            "policy": "budget",
            "decision": "deny",
            "dag_id": "example.dag_1",
            "metric": "roi",
            "hook": "on_task_instance_running",
            "bound": "connect",
        }
        return ".".join([self.name, *(samples[s] for s in self.segments)])

    def __repr__(self) -> str:
        return f"MetricSpec({self.name!r}, {self.kind!r}, {', '.join(self.segments)})"


#: Every metric, for the docs test and the exporter-mapping test.
ALL_METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(RUN_STATE, "counter", "state"),
    MetricSpec(STEP_STATE, "counter", "state"),
    MetricSpec(RUN_DURATION, "timer", "end_state", "dag_id"),
    MetricSpec(STEP_DURATION, "timer", "end_state"),
    MetricSpec(COMPENSATION_RUN, "counter", "outcome"),
    MetricSpec(COMPENSATION_STEP, "counter", "outcome"),
    MetricSpec(COMPENSATION_DURATION, "timer", "outcome"),
    MetricSpec(GATE_DECISION, "counter", "policy", "decision"),
    MetricSpec(APPROVAL_WAIT, "timer", "outcome"),
    MetricSpec(COST_SPENT, "gauge", "dag_id"),
    MetricSpec(COST_BUDGET, "gauge", "dag_id"),
    MetricSpec(QUALITY_DECISION, "counter", "decision"),
    MetricSpec(QUALITY_FAILED, "gauge", "dag_id"),
    MetricSpec(CANARY_DECISION, "counter", "decision"),
    MetricSpec(WAVE_DECISION, "counter", "decision"),
    MetricSpec(AUDIT_EVENTS, "counter"),
    MetricSpec(LISTENER_ERRORS, "counter"),
    MetricSpec(LISTENER_DURATION, "timer", "hook"),
    MetricSpec(TRANSITIONS_REFUSED, "counter"),
    MetricSpec(STORE_TIMEOUT, "counter", "bound"),
    MetricSpec(SPOOL_WRITTEN, "counter"),
    MetricSpec(SPOOL_REPLAYED, "counter"),
    MetricSpec(SPOOL_SUPERSEDED, "counter"),
    MetricSpec(SPOOL_FULL, "counter"),
    MetricSpec(DORA_LEAD_TIME, "gauge", "dag_id"),
    MetricSpec(DORA_DEPLOYMENT_FREQUENCY, "gauge", "dag_id"),
    MetricSpec(DORA_MTTR, "gauge", "dag_id"),
    MetricSpec(DORA_CHANGE_FAILURE_RATE, "gauge", "dag_id"),
    MetricSpec(BUSINESS, "gauge", "metric", "dag_id"),
)

# StatsD's line format reserves ':', '|', '@', '#' and ',' (tags); newlines split packets. Anything
# outside this set becomes '_' so a strange DAG id can never corrupt a packet or the one after it.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_BOUNDED = re.compile(r"[^a-z0-9_]")


def segment(value: str) -> str:
    """A bounded segment (state, outcome, policy, metric name): lower-case ``[a-z0-9_]`` only."""
    return _BOUNDED.sub("_", value.strip().lower()) or "_"


def _dag(dag_id: str) -> str:
    # Dots stay: the DAG id is always the last segment, and the mapping takes "the rest" as dag_id.
    return _UNSAFE.sub("_", dag_id) or "_"


def listener_duration(hook: str) -> str:
    """Timer of one listener hook (``hook`` is the hook's name, e.g. ``on_dag_run_success``)."""
    return f"{LISTENER_DURATION}.{segment(hook)}"


def run_state(state: str) -> str:
    """Name of the counter for a run entering ``state``."""
    return f"{RUN_STATE}.{state.lower()}"


def step_state(state: str) -> str:
    """Name of the counter for a step entering ``state``."""
    return f"{STEP_STATE}.{state.lower()}"


def run_duration(end_state: str, dag_id: str) -> str:
    """Timer of a run from CREATED to ``end_state``."""
    return f"{RUN_DURATION}.{segment(end_state)}.{_dag(dag_id)}"


def step_duration(end_state: str) -> str:
    """Timer of a step from RUNNING to ``end_state``."""
    return f"{STEP_DURATION}.{segment(end_state)}"


def compensation_run(outcome: str) -> str:
    """Counter of a run's compensation ``started``, ``compensated`` or ``failed``."""
    return f"{COMPENSATION_RUN}.{segment(outcome)}"


def compensation_step(outcome: str) -> str:
    """Counter of one step's undo ``started``, ``compensated`` or ``failed``."""
    return f"{COMPENSATION_STEP}.{segment(outcome)}"


def compensation_duration(outcome: str) -> str:
    """Timer of a run's compensation, COMPENSATING to ``compensated`` or ``failed``."""
    return f"{COMPENSATION_DURATION}.{segment(outcome)}"


def gate_decision(policy: str, decision: str) -> str:
    """Counter of one gate decision by policy kind (``budget``, ``approval``, ...) and outcome."""
    return f"{GATE_DECISION}.{segment(policy)}.{segment(decision)}"


def approval_wait(outcome: str) -> str:
    """Timer of a human approval, by ``approved``, ``rejected`` or ``expired``."""
    return f"{APPROVAL_WAIT}.{segment(outcome)}"


def quality_decision(decision: str) -> str:
    """Counter of a quality gate's verdict, by ``allow``, ``deny`` or ``warn``."""
    return f"{QUALITY_DECISION}.{segment(decision)}"


def canary_decision(decision: str) -> str:
    """Counter of a canary check's verdict, by ``promote``, ``hold`` or ``rollback``."""
    return f"{CANARY_DECISION}.{segment(decision)}"


def wave_decision(decision: str) -> str:
    """Counter of a rollout wave's check, by ``continue`` or ``stop``."""
    return f"{WAVE_DECISION}.{segment(decision)}"


def quality_failed(dag_id: str) -> str:
    """Gauge of the expectations a DAG's last checked data failed."""
    return f"{QUALITY_FAILED}.{_dag(dag_id)}"


def cost_spent(dag_id: str) -> str:
    """Gauge of a DAG's spend in its budget window."""
    return f"{COST_SPENT}.{_dag(dag_id)}"


def cost_budget(dag_id: str) -> str:
    """Gauge of a DAG's budget for its window."""
    return f"{COST_BUDGET}.{_dag(dag_id)}"


def dora(base: str, dag_id: str) -> str:
    """One of the ``DORA_*`` gauges for a deployment DAG."""
    return f"{base}.{_dag(dag_id)}"


def store_timeout(bound: str) -> str:
    """Counter of waits on the store that ran out their bound (``connect``, ``statement``, ``lock``)."""
    return f"{STORE_TIMEOUT}.{segment(bound)}"


def business(metric: str, dag_id: str) -> str:
    """Gauge of a business metric (``roi``, ``cpa``, ...) a step of ``dag_id`` recorded."""
    return f"{BUSINESS}.{segment(metric)}.{_dag(dag_id)}"
