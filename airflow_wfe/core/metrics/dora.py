"""DORA metrics of deployment DAGs, computed from a run history (pure: no store, no clock).

A *deployment DAG* is one tagged ``deployment`` (:data:`DEPLOYMENT_TAG`, read from Airflow at CLI
time) or matched by ``[wfe] deployment_dags``; each of its runs is a deployment. The definitions,
over a window ending now (docs/metrics.md repeats them):

* A deployment *finishes* when its run first reaches an end state (COMPLETED, FAILED, COMPENSATED,
  COMPENSATION_FAILED); it counts in the window when it finished inside it. It *succeeded* when its
  run is COMPLETED now; it is a *change failure* when its run is FAILED, COMPENSATING, COMPENSATED or
  COMPENSATION_FAILED now (so a completed deployment rolled back later by ``wfe compensate --force``
  turns into a failure). REJECTED runs never deployed anything and are left out; runs still going
  are not finished.
* **Deployment frequency**: successful deployments in the window, per day.
* **Lead time for changes**: for each change first delivered by a successful deployment in the
  window, the time from when the change was first seen to that success. A change is the run's spec
  hash (YAML workflows) or Airflow's DAG version; it is *first seen* when the first run of that
  version was created, so failed attempts and waiting count. A run with neither is its own change
  (lead time = its own creation to its success). The figure is the mean.
* **Mean time to restore**: a failure episode starts at the first failed deployment after a success
  (or at the first deployment of the window) and ends at the next successful deployment; MTTR is the
  mean episode length. An episode still open at the end of the window is reported, not averaged.
* **Change failure rate**: change failures / finished deployments.

Reading the history from the store and sending the gauges is the engine's job
(:mod:`airflow_wfe.engine.dora_metrics`); this module only does the arithmetic, so it is tested
without a database and stays below the store in the layer contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any, Final, Protocol

from airflow_wfe.core.states import RunState

__all__ = [
    "DEPLOYMENT_TAG",
    "DeploymentRun",
    "DoraFigures",
    "RunMove",
    "compute_dora",
]

#: The DAG tag that declares a DAG's runs to be deployments.
DEPLOYMENT_TAG: Final = "deployment"

_FINISHED: Final = frozenset(
    {RunState.COMPLETED, RunState.FAILED, RunState.COMPENSATED, RunState.COMPENSATION_FAILED}
)
_FAILURES: Final = frozenset(
    {
        RunState.FAILED,
        RunState.COMPENSATING,
        RunState.COMPENSATED,
        RunState.COMPENSATION_FAILED,
    }
)


class RunMove(Protocol):
    """The two fields of a run-level transition DORA reads."""

    @property
    def to_state(self) -> str: ...

    @property
    def at(self) -> datetime: ...


class DeploymentRun(Protocol):
    """What DORA reads of a run: the store's ``RunHistory`` has this shape.

    A protocol rather than the store's class, so the arithmetic depends on no layer above the core.
    """

    @property
    def dag_id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def change_key(self) -> str | None: ...

    @property
    def transitions(self) -> Sequence[RunMove]: ...


@dataclass(frozen=True)
class DoraFigures:
    """The four DORA figures of one deployment DAG over one window (``None``: no data for it)."""

    dag_id: str
    window_start: datetime
    window_end: datetime
    deployments: int
    successes: int
    failures: int
    deployment_frequency_per_day: float
    lead_time_seconds: float | None
    mttr_seconds: float | None
    change_failure_rate: float | None
    open_failure_since: datetime | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: datetimes in ISO 8601."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


def _finished_at(run: DeploymentRun) -> datetime | None:
    return next((t.at for t in run.transitions if t.to_state in _FINISHED), None)


def compute_dora(
    dag_id: str,
    runs: Sequence[DeploymentRun],
    *,
    window_end: datetime,
    window: timedelta,
    first_seen: dict[str, datetime] | None = None,
) -> DoraFigures:
    """The DORA figures of ``dag_id`` from its runs (pure: no store, no clock).

    Args:
        runs: the DAG's runs; those that did not finish inside the window are ignored.
        window_end: the end of the window (usually now).
        window: its length.
        first_seen: when each change key was first run (the store's ``version_first_seen``); a key missing
            here falls back to the earliest run of it among ``runs``.
    """
    start = window_end - window
    deployments = _deployments(dag_id, runs, start, window_end)
    successes = [d for d in deployments if d[1]]
    failures = len(deployments) - len(successes)
    lead_times = _lead_times(runs, successes, first_seen or {})
    episodes, failing_since = _failure_episodes(deployments)
    days = window.total_seconds() / 86400
    return DoraFigures(
        dag_id=dag_id,
        window_start=start,
        window_end=window_end,
        deployments=len(deployments),
        successes=len(successes),
        failures=failures,
        deployment_frequency_per_day=len(successes) / days if days > 0 else 0.0,
        lead_time_seconds=fmean(lead_times) if lead_times else None,
        mttr_seconds=fmean(episodes) if episodes else None,
        change_failure_rate=failures / len(deployments) if deployments else None,
        open_failure_since=failing_since,
    )


_Deployment = tuple[datetime, bool, "DeploymentRun"]


def _deployments(
    dag_id: str, runs: Sequence[DeploymentRun], start: datetime, end: datetime
) -> list[_Deployment]:
    """(finished at, succeeded, run) of the DAG's deployments that finished in the window."""
    found: list[_Deployment] = []
    for run in runs:
        finished = _finished_at(run)
        if run.dag_id != dag_id or finished is None or not start <= finished <= end:
            continue
        state = RunState(run.state)
        if state is RunState.COMPLETED:
            found.append((finished, True, run))
        elif state in _FAILURES:
            found.append((finished, False, run))
    return sorted(found, key=lambda item: item[0])


def _lead_times(
    runs: Sequence[DeploymentRun], successes: Sequence[_Deployment], first_seen: dict[str, datetime]
) -> list[float]:
    """Seconds from a change's first run to its first successful deployment, per change."""
    seen = dict(first_seen)
    for run in runs:
        key = run.change_key
        if key is not None and (key not in seen or run.created_at < seen[key]):
            seen[key] = run.created_at
    lead_times: list[float] = []
    delivered: set[str] = set()
    for finished, _ok, run in successes:
        key = run.change_key
        if key is None:
            lead_times.append((finished - run.created_at).total_seconds())
        elif key not in delivered:
            delivered.add(key)
            lead_times.append((finished - seen[key]).total_seconds())
    return lead_times


def _failure_episodes(deployments: Sequence[_Deployment]) -> tuple[list[float], datetime | None]:
    """Lengths of restored failure episodes, and when the open one (if any) began."""
    episodes: list[float] = []
    failing_since: datetime | None = None
    for finished, ok, _run in deployments:
        if not ok and failing_since is None:
            failing_since = finished
        elif ok and failing_since is not None:
            episodes.append((finished - failing_since).total_seconds())
            failing_since = None
    return episodes, failing_since
