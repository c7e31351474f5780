"""Where each kill-point trial dies, drawn from a seeded RNG: shared by the scenario and its test.

A trial's plan is a pure function of ``(point, trial, seed)``, so the test can replay any trial from
the seed it prints, and the store-write wrapper (which sees only a run id) finds the same plan the
run's conf carries. The run id names the trial: ``kp__<point>__<trial>__<seed>``.

Plan keys: ``point``, ``trial``, ``seed``; ``dag_id`` (the gate's points run the DAG with a gate);
``fail`` (``charge`` fails for good, so the saga undoes
``reserve``); ``kill`` (``None`` or where the task process SIGKILLs itself: ``task``, ``deaths`` (it dies on
each try up to this one),
``where``, ``delay``, and for store writes ``to`` and ``actor``); ``slow`` (seconds a compensation
takes, so the scheduler can be killed while it runs).
"""

from __future__ import annotations

import random
from typing import Any

#: The scenario's DAGs: the saga, and the same with a policy gate between its two steps (only the
#: gate's kill points pay for the gate task).
DAG_ID = "wfe_kill_points"
GATE_DAG_ID = "wfe_kill_points_gate"
#: Forward steps of the saga, in order (the gate DAG has ``gate`` between them).
STEPS = ("reserve", "charge")
#: Where inside one store transaction a write can die: before its audit events are appended,
#: after they are (not committed yet), or after the commit (before the listener returns).
WRITE_POINTS = ("before_audit", "after_audit", "after_commit")


def run_id_of(point: str, trial: int, seed: int) -> str:
    return f"kp__{point}__{trial:02d}__{seed}"


def parse_run_id(run_id: str) -> tuple[str, int, int] | None:
    parts = run_id.split("__")
    if len(parts) != 4 or parts[0] != "kp":
        return None
    return parts[1], int(parts[2]), int(parts[3])


def plan_for(point: str, trial: int, seed: int) -> dict[str, Any]:
    """The trial's plan (see the module docstring)."""
    rng = random.Random(f"{seed}:{point}:{trial}")
    deaths = rng.choice((1, 1, 2))  # die on try 1, sometimes on try 2 as well
    delay = round(rng.uniform(0.0, 0.4), 3)
    plan: dict[str, Any] = {"point": point, "trial": trial, "seed": seed, "fail": False}
    plan["dag_id"] = GATE_DAG_ID if point.startswith("gate_") else DAG_ID
    plan["kill"] = None
    plan["slow"] = 0.0
    if point in ("step_before_effect", "step_after_effect"):
        where = point.removeprefix("step_")
        task = rng.choice(("reserve", "charge"))
        plan["kill"] = {"task": task, "deaths": deaths, "where": where, "delay": delay}
    elif point in ("gate_before_decision", "gate_after_decision"):
        where = point.removeprefix("gate_")
        plan["kill"] = {"task": "gate", "deaths": deaths, "where": where, "delay": delay}
    elif point in ("compensation_before_effect", "compensation_after_effect"):
        where = point.removeprefix("compensation_")
        plan["fail"] = True
        plan["kill"] = {
            "task": "compensate__reserve",
            "deaths": deaths,
            "where": where,
            "delay": delay,
        }
    elif point in ("write_step_running", "write_step_succeeded"):
        to = "RUNNING" if point == "write_step_running" else "SUCCEEDED"
        plan["kill"] = {
            "task": rng.choice(STEPS),
            # A task whose success write died has reported its success already: no try 2.
            "deaths": 1 if to == "SUCCEEDED" else deaths,
            "where": rng.choice(WRITE_POINTS),
            "to": to,
            "actor": "worker",
            "delay": 0.0,
        }
    elif point == "write_compensation":
        plan["fail"] = True
        plan["kill"] = {
            "task": "reserve",
            "deaths": deaths,
            "where": rng.choice(WRITE_POINTS),
            "to": rng.choice(("COMPENSATING", "COMPENSATED")),
            "actor": "saga",
            "delay": 0.0,
        }
    elif point == "scheduler_mid_compensation":
        plan["fail"] = True
        plan["slow"] = round(rng.uniform(4.0, 10.0), 2)
    else:  # faults of the whole cluster (the store, the scheduler): the run itself is plain
        plan["fail"] = rng.random() < 0.5
    return plan
