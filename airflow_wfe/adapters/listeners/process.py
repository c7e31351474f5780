"""What a long-lived Airflow process prepares once, and where its DAG-run hooks do their writing.

**Warm-up before the fork.** Under LocalExecutor the scheduler forks its worker processes when its
executor starts, and each worker forks one process per task instance. Whatever the scheduler has
loaded before that is shared by every task process; whatever it has not is loaded again by each of
them at its first hook (the recorder and store modules, the signing key, the StatsD client, the
store's schema check: tens of milliseconds per task). Airflow calls ``on_starting`` with the ``Job``
when the scheduler (or dag-processor, or triggerer) is created, before its executor starts:
:func:`prepare` loads all of that there, once. It also rehearses a task's writes in a transaction
it rolls back (:func:`rehearse_task`), so the forks inherit the write path's compiled statements,
and closes its store connections, so none is held across a fork.

**DAG-run writes off the scheduler's loop.** DAG-run hooks fire inline in the scheduler's loop. In
a process that started as a ``Job``, each hook reads what it needs from Airflow's objects in the
loop's thread (their session is only valid there) and hands the writes to one writer thread, which
runs them in the order the hooks fired; every write is still one store transaction of the recorder.
The trade-off: the store shows a run's start or end a moment after Airflow does, and writes queued
when the scheduler is killed with SIGKILL are lost (``before_stopping`` drains the queue on a normal
stop, for up to :data:`DRAIN_TIMEOUT_S`). A full queue makes the hook write inline rather than drop
anything. Everywhere else (``dags test``, the API server, task processes) hooks write inline.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from airflow_wfe.config import get_settings
from airflow_wfe.core.metrics import names
from airflow_wfe.engine.emitter import get_emitter

__all__ = [
    "DRAIN_TIMEOUT_S",
    "dispatch",
    "drain",
    "in_background",
    "prepare",
    "prepare_worker",
    "report_failure",
]

log = logging.getLogger("airflow_wfe.listener")

#: How long a stopping scheduler waits for the DAG-run writes still queued.
DRAIN_TIMEOUT_S: Final = 10.0
#: Queued DAG-run writes beyond which a hook writes inline (back-pressure, nothing dropped).
_QUEUE_SIZE: Final = 1000


def report_failure(hook: str, exc: BaseException) -> None:
    """A hook could not record: count it, log it, and put it in the trail if the store takes it."""
    from airflow_wfe.adapters.listeners import changes

    get_emitter().incr(names.LISTENER_ERRORS)
    log.warning("wfe listener %s could not record: %s: %s", hook, type(exc).__name__, exc)
    changes.record_plugin_error(hook, exc)


class _Writer:
    """One daemon thread running queued DAG-run writes in order."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, Callable[[], None]]] = queue.Queue(_QUEUE_SIZE)
        self.thread = threading.Thread(target=self._loop, name="wfe-dag-run-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            hook, work = self.queue.get()
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - a failed write never stops the writer
                report_failure(hook, exc)
            finally:
                self.queue.task_done()

    def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty, at most ``timeout`` seconds; whether it is."""
        end = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True


_state: dict[str, Any] = {"background": False, "writer": None}
_lock = threading.Lock()


def _forget_after_fork() -> None:
    # A forked child (a LocalExecutor worker, then a task) has no writer thread: it writes inline.
    _state.update(background=False, writer=None)


os.register_at_fork(after_in_child=_forget_after_fork)


def in_background() -> bool:
    """Whether this process's DAG-run hooks hand their writes to the writer thread."""
    return bool(_state["background"])


def dispatch(hook: str, work: Callable[[], None]) -> None:
    """Run ``work`` (a DAG-run hook's writes) on the writer thread, or inline outside a Job.

    Raises what ``work`` raises when it runs inline; on the writer thread, failures are reported by
    :func:`report_failure`.
    """
    if not in_background():
        work()
        return
    with _lock:
        writer = _state["writer"]
        if writer is None:
            writer = _state["writer"] = _Writer()
    try:
        writer.queue.put_nowait((hook, work))
    except queue.Full:
        work()


def drain(timeout: float = DRAIN_TIMEOUT_S) -> None:
    """Wait for the queued DAG-run writes (a stopping scheduler); log when some are left."""
    writer = _state["writer"]
    if writer is not None and not writer.drain(timeout):
        log.warning(
            "wfe listener: %d DAG-run writes still queued after %.0f s at shutdown; they are lost",
            writer.queue.unfinished_tasks,
            timeout,
        )


def _is_job(component: Any) -> bool:
    try:
        from airflow.jobs.job import Job
    except ImportError:  # a task process has no airflow.jobs
        return False
    return isinstance(component, Job)


def prepare(component: Any) -> None:
    """``on_starting``: in a scheduler, dag-processor or triggerer, load once what every hook needs
    and move DAG-run writes to the writer thread; nothing anywhere else. Never raises."""
    if not _is_job(component):
        return
    _prepare_forks(background=True)


def prepare_worker() -> None:
    """A Celery worker's main process, before its pool forks (``worker_init``, wired by
    :mod:`airflow_wfe.adapters.celery_config`): load what task hooks need, as :func:`prepare` does
    for a scheduler. Task hooks there write inline, so no writer thread. Never raises."""
    _prepare_forks(background=False)


def _prepare_forks(*, background: bool) -> None:
    try:
        settings = get_settings()
        if not settings.enabled:
            return
        _state["background"] = background
        warm_up(settings.store_conn)
    except Exception as exc:  # noqa: BLE001 - a warm-up failure only costs the forks their imports
        log.warning(
            "wfe listener: warm-up failed (%s: %s); tasks load on demand", type(exc).__name__, exc
        )


def warm_up(store_conn: str) -> None:
    """Import and build, in this process, what a task's hooks would otherwise load for themselves."""
    started = time.perf_counter()
    import airflow.sdk.log  # noqa: F401 - mask_secret, at a task's first hook

    # The hooks' modules, and what the cluster policy runs while a task process re-parses its
    # governed DAG file (the checks, the saga's wiring).
    import airflow_wfe.adapters.compile.provenance
    import airflow_wfe.adapters.listeners.changes
    import airflow_wfe.adapters.parse_time_checks
    import airflow_wfe.adapters.saga.tasks
    import airflow_wfe.adapters.saga.wiring
    import airflow_wfe.engine.transition_metrics  # noqa: F401
    from airflow_wfe.engine.harness import get_recorder
    from airflow_wfe.store.schema import ensure_schema

    get_recorder()  # store, audit log (signing key, redaction), StatsD client
    try:
        ensure_schema(store_conn)  # checked once per process; forks inherit the answer
        rehearse_task()
    except Exception as exc:  # noqa: BLE001 - each task checks for itself then
        log.warning(
            "wfe listener: store not checked or rehearsed at start (%s: %s)",
            type(exc).__name__,
            exc,
        )
    log.info("wfe listener: warmed up in %.0f ms", (time.perf_counter() - started) * 1000)


#: The run a rehearsal writes (and rolls back): no DAG id Airflow accepts has a space.
REHEARSAL_DAG: Final = "wfe rehearsal"


def rehearse_task() -> None:
    """Record a task's start and end the way its hooks do, in a transaction that is rolled back.

    A task process's first hook otherwise compiles every statement of the write path for itself
    (SQLAlchemy caches them per process): done here, before the fork, every task inherits them.
    Nothing is written anywhere (:func:`airflow_wfe.engine.harness.rehearsal`).
    """
    from airflow_wfe.adapters.listeners.scope import ensure_run_started, start_task
    from airflow_wfe.core.states import StepState
    from airflow_wfe.engine.harness import rehearsal

    run_id = f"rehearsal__{os.getpid()}"
    facts: dict[str, str | None] = {"run_type": "manual", "dag_version_id": "rehearsal"}
    with rehearsal() as recorder:
        # The scheduler's start of the run, then exactly what a task's hooks do on a RUNNING run:
        # the start check and the step's RUNNING in one transaction, then the step's end.
        recorder.run_started(
            REHEARSAL_DAG, run_id, actor="scheduler", reason="rehearsal", facts=facts
        )
        start_task(
            recorder,
            REHEARSAL_DAG,
            run_id,
            "task",
            actor="worker",
            run_reason="rehearsal",
            step_reason="rehearsal",
            facts=facts,
            candidate=_no_candidate,
            try_number=1,
        )
        ensure_run_started(recorder, REHEARSAL_DAG, run_id, actor="worker", reason="rehearsal")
        recorder.step(
            REHEARSAL_DAG,
            run_id,
            "task",
            StepState.SUCCEEDED,
            actor="worker",
            reason="rehearsal",
            try_number=1,
        )


def _no_candidate() -> Any:
    """The rehearsal's run is RUNNING when its task starts: no pre-flight can be asked for."""
    raise RuntimeError("the rehearsal's run needs no pre-flight")
