"""The listener in a long-lived Airflow process: its own timers, the warm-up before tasks are
forked, DAG-run writes on the writer thread (through a real ``dag.test()`` and a real SQLite store),
and no listener at all when ``[wfe] enabled`` is false."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_wfe.adapters.listeners import process
from airflow_wfe.engine.harness import get_runtime_store, reset_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def statsd_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    monkeypatch.setenv("AIRFLOW__WFE__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__WFE__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__WFE__STATSD_PORT", str(receiver.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__WFE__STATSD_PREFIX", "airflow")
    reset_runtime()
    yield receiver
    receiver.close()
    monkeypatch.undo()
    reset_runtime()


@pytest.fixture
def as_scheduler() -> Iterator[None]:
    """This process as a scheduler: ``on_starting`` called with a real (unsaved) Airflow ``Job``."""
    from airflow.jobs.job import Job

    saved = dict(process._state)
    Job()  # type: ignore[no-untyped-call] # Airflow calls every listener's on_starting(component=job) from Job.__init__
    yield
    process.drain()
    process._state.update(saved)


def _drain(receiver: socket.socket) -> list[str]:
    packets: list[str] = []
    while True:
        try:
            data = receiver.recv(65535)
        except TimeoutError:
            return packets
        packets.extend(data.decode().splitlines())


def test_every_hook_reports_its_duration(dagbag: Any, statsd_receiver: socket.socket) -> None:
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "success"
    timers: dict[str, int] = {}
    for line in _drain(statsd_receiver):
        name, _, value = line.partition(":")
        if name.startswith("airflow.wfe.listener.duration.") and value.endswith("|ms"):
            assert float(value[:-3]) >= 0
            hook = name.rsplit(".", 1)[1]
            timers[hook] = timers.get(hook, 0) + 1
    tasks = len(get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id).steps)
    # dag.test() fires no on_dag_run_running (the run starts RUNNING); the end fires once.
    assert timers.get("on_dag_run_success") == 1
    assert timers.get("on_task_instance_running", 0) >= tasks
    assert timers.get("on_task_instance_success", 0) >= tasks


def test_a_job_warms_up_and_writes_dag_runs_on_the_writer_thread(
    dagbag: Any, as_scheduler: None
) -> None:
    from airflow_wfe.config import get_settings
    from airflow_wfe.store import schema

    assert process.in_background()
    assert get_settings().store_conn in schema._checked  # forks inherit the schema check
    seen: list[str] = []
    real_dispatch = process.dispatch

    def spy(hook: str, work: Any) -> None:
        def traced() -> None:
            seen.append(f"{hook}@{threading.current_thread().name}")
            work()

        real_dispatch(hook, traced)

    process.dispatch = spy
    try:
        dag_run = dagbag.get_dag("wfe_example_success").test()
    finally:
        process.dispatch = real_dispatch
    process.drain()
    assert dag_run.state == "success"
    assert seen == ["on_dag_run_success@wfe-dag-run-writer"]
    record = get_runtime_store().get_run(dag_run.dag_id, dag_run.run_id)
    assert record.state == "COMPLETED"
    assert [t.actor for t in record.transitions][-1] == "scheduler"


def test_a_forked_child_writes_inline(as_scheduler: None) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a LocalExecutor worker or task has no writer thread
        os.write(write, b"1" if process.in_background() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"0"
    assert process.in_background()


def _our_listeners(enabled: str) -> list[str]:
    env = {**os.environ, "AIRFLOW__WFE__ENABLED": enabled}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        env=env,
    )
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    ours = [p for p in plugins if p["name"] == "airflow_wfe"]
    assert len(ours) == 1
    return list(ours[0]["listeners"])


def test_no_listener_is_registered_when_disabled() -> None:
    assert _our_listeners("True") == ["airflow_wfe.adapters.listeners.listener.WfeListener"]
    assert _our_listeners("False") == []
