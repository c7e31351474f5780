"""``rollout()``: deploy to targets in blast-radius waves, with a check (and any gate) between waves.

Each wave is a mapped Airflow task over its targets (one task instance per target, so every target is
a step in the run's history), followed by a :class:`WaveCheckOperator` that counts the wave's failed
targets: within ``max_failed`` (a share) the rollout goes on, past it the check fails and the
rollout stops; the run fails and its saga undoes every target already deployed, newest wave first
(give ``undo``). A gate between waves (a canary or policy gate, an approval) is any operator that
``between(wave_number)`` returns.

Example::

    from airflow_wfe import rollout

    def deploy(target: str) -> str:
        ...  # push the release to one host; return what undo needs
        return target

    def undo(result: str, idempotency_key: str) -> None:
        ...  # put the previous release back on that host

    waves = rollout(deploy, targets=hosts, waves=["1%", "10%", "50%", "100%"], undo=undo,
                    max_failed=0.05)
    build >> waves >> announce
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

__all__ = ["WaveCheckOperator", "rollout"]

_GONE = frozenset({"upstream_failed", "skipped", "removed"})


class WaveCheckOperator(BaseOperator):
    """Counts a wave's failed targets; stops the rollout past ``max_failed`` (runs ``all_done``)."""

    def __init__(
        self,
        *,
        wave_task_id: str,
        wave: int,
        waves: int,
        targets: Sequence[str],
        max_failed: float = 0.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        if not 0 <= max_failed < 1:
            raise ValueError(f"{self.task_id}: max_failed is a share from 0 to below 1")
        self.wave_task_id = wave_task_id
        self.wave = wave
        self.waves = waves
        self.targets = list(targets)
        self.max_failed = max_failed

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        ti = context["ti"]
        crumbs = RuntimeTaskInstance.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=ti.run_id)
        states = {
            _index(c.get("map_index")): str(c["state"])
            for c in crumbs
            if c["task_id"] == self.wave_task_id and c.get("state") is not None
        }
        if states and all(state in _GONE for state in states.values()):
            # Failed, not skipped: Airflow judges a run by its last tasks, and a rollout stopped
            # at an earlier wave must not end as a successful run.
            raise AirflowFailException(
                f"wave {self.wave} did not run: the rollout stopped at an earlier wave"
            )
        failed = [self.targets[i] for i, state in sorted(states.items()) if state == "failed"]
        share = len(failed) / max(len(self.targets), 1)
        verdict = "stop" if share > self.max_failed else "continue"
        label = f"wave {self.wave} of {self.waves}"
        message = (
            f"{label}: {len(failed)} of {len(self.targets)} targets failed ({share:.0%}, at most "
            f"{self.max_failed:.0%} allowed)" + (f": {', '.join(failed[:10])}" if failed else "")
        )
        self._record(context, verdict, message, failed)
        if verdict == "stop":
            raise AirflowFailException(f"rollout stopped: {message}")
        return {"decision": verdict, "wave": self.wave, "failed": failed}

    def _record(self, context: Any, verdict: str, message: str, failed: Sequence[str]) -> None:
        from airflow_wfe.core.metrics import names
        from airflow_wfe.engine.gate_decisions import GateContext
        from airflow_wfe.engine.harness import get_recorder

        dag_run = context["dag_run"]
        recorder = get_recorder()
        recorder.run_started(
            dag_run.dag_id, dag_run.run_id, actor="worker", reason=f"gate {self.task_id} started"
        )
        gate = GateContext(dag_run.dag_id, dag_run.run_id, self.task_id, recorder)
        gate.record(
            kind="wave",
            outcome=verdict,
            reasons=[
                {
                    "policy": "waves",
                    "rule": f"wave {self.wave}",
                    "outcome": verdict,
                    "message": message,
                }
            ],
            policies={},
            details={
                "wave": self.wave,
                "waves": self.waves,
                "targets": self.targets,
                "failed": list(failed),
                "max_failed": self.max_failed,
                # failures this check let through: the saga does not treat them as the run's
                "tolerated": [self.wave_task_id] if failed and verdict == "continue" else [],
            },
        )
        tags = {"dag_id": gate.dag_id, "step": gate.step_id}
        recorder.emitter.incr(names.wave_decision(verdict), tags=tags)


def _index(value: Any) -> int:
    return -1 if value is None else int(value)


def rollout(
    deploy: Callable[..., Any],
    *,
    targets: Sequence[str],
    waves: Sequence[str | int] = ("1%", "10%", "50%", "100%"),
    max_failed: float = 0.0,
    undo: Callable[..., Any] | None = None,
    between: Callable[[int], Any] | None = None,
    group_id: str = "rollout",
    op_kwargs: Mapping[str, Any] | None = None,
    **task_kwargs: Any,
) -> Any:
    """Build the rollout as a task group: ``wave_<n>`` (mapped over its targets) and
    ``wave_<n>_check`` per wave, and ``between(n)`` after every check but the last.

    ``deploy(target, **op_kwargs)`` runs once per target; ``undo(result, idempotency_key)`` undoes
    one target when the run fails (the saga calls it, newest wave first). ``task_kwargs`` (retries,
    pool, timeouts ...) go to every wave's task.

    Raises:
        ValueError: the targets or waves are invalid (see :func:`~airflow_wfe.core.waves.plan_waves`).
    """
    from airflow.sdk import TaskGroup, task

    from airflow_wfe.adapters.saga.declare import compensate
    from airflow_wfe.core.waves import plan_waves

    plan = plan_waves(list(targets), list(waves))
    with TaskGroup(group_id=group_id) as group:
        previous: Any = None
        for number, batch in enumerate(plan, start=1):
            wave = (
                task(task_id=f"wave_{number}", **task_kwargs)(deploy)
                .partial(**dict(op_kwargs or {}))
                .expand(target=batch)
            )
            if undo is not None:
                compensate(wave, undo)
            check = WaveCheckOperator(
                task_id=f"wave_{number}_check",
                wave_task_id=wave.operator.task_id,  # type: ignore[attr-defined]
                wave=number,
                waves=len(plan),
                targets=batch,
                max_failed=max_failed,
            )
            if previous is not None:
                previous >> wave
            wave >> check
            previous = check
            if between is not None and number < len(plan):
                gate = between(number)
                check >> gate
                previous = gate
    return group
