"""The load test's DAG (tests/integration/test_celery_load.py): 20 governed steps, each trivial.

``wfe_load``: ``extract`` >> 18 ``transform_NN`` in parallel >> ``publish``. Every step does only
the anchor below, so what the test measures under load is Airflow's and airflow-wfe's own cost per
task, not the steps'. No retries: under load a try that fails is a finding, not something to paper
over. ``max_active_runs`` lets all 50 runs the test triggers be active at once (Airflow's default is
16).

The anchor: each step times a fixed piece of pure-Python work (:data:`ANCHOR_LOOPS` iterations,
about 11 ms of CPU on the CI machine kind) and sends the wall time as a StatsD timer
``wfe_load.anchor`` to ``WFE_LOAD_ANCHOR_PORT``. It runs in the same process as the listener's
hooks, at the same moment, so it waits for a core as they do: the test compares the hooks' times
with it rather than with a figure from a quiet machine.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from airflow.sdk import DAG, task

#: Steps per run: ``extract``, the transforms, ``publish``.
STEPS = 20
#: Runs the test triggers at once.
RUNS = 50
#: Iterations of the anchor's loop.
ANCHOR_LOOPS = 300_000


def _anchor() -> None:
    """Time :data:`ANCHOR_LOOPS` iterations and send the wall time to the test's StatsD socket."""
    started = time.perf_counter()
    total = 0
    for i in range(ANCHOR_LOOPS):
        total += i * i
    elapsed_ms = (time.perf_counter() - started) * 1000
    port = os.environ.get("WFE_LOAD_ANCHOR_PORT")
    if port:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(f"wfe_load.anchor:{elapsed_ms:.3f}|ms".encode(), ("127.0.0.1", int(port)))


with DAG(
    "wfe_load",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    max_active_runs=RUNS,
    default_args={"retries": 0},
    tags=["wfe", "test"],
):

    @task
    def extract() -> None:
        _anchor()

    @task
    def transform() -> None:
        _anchor()

    @task
    def publish() -> None:
        _anchor()

    transforms = [transform.override(task_id=f"transform_{i:02d}")() for i in range(STEPS - 2)]
    extract() >> transforms >> publish()
