"""``wfe run``: one local run of a workflow file through Airflow's own ``dag.test()``.

The workflow is compiled and serialized like the DAG processor would, then run in this process on the
configured Airflow metadata database; the plugin's listeners record it like any governed run, and the
recorded history is what the command prints. Airflow's own output (its log lines, task logs) goes to a
file, or to stderr with ``--verbose``: stdout carries only the history, so ``wfe run F --json | jq``
works. The redirection is at the file-descriptor level because Airflow's logging holds the stream it
was configured with, which ``contextlib.redirect_stdout`` does not reach.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models import RunDetail
from airflow_wfe.app.runs import list_runs, run_detail
from airflow_wfe.cli.progress import Progress, progress_of
from airflow_wfe.exceptions import WfeError

__all__ = ["airflow_output_to", "run_workflow_once"]


def _require_airflow_db() -> None:
    from airflow import settings

    if settings.engine is None:
        settings.configure_orm()  # type: ignore[no-untyped-call]
    engine = settings.engine
    ready = False
    if engine is not None:
        with engine.connect() as connection:
            ready = engine.dialect.has_table(connection, "dag_run")
    if not ready:
        raise WfeError(
            "Airflow's metadata database is not initialised here "
            f"(AIRFLOW_HOME={os.environ.get('AIRFLOW_HOME', '~/airflow')}); run `airflow db migrate`"
        )


def _serialize(dag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()  # type: ignore[no-untyped-call]
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


@contextlib.contextmanager
def airflow_output_to(target_fd: int) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``target_fd`` for the block, then put them back."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(target_fd, 1)
        if target_fd != 2:
            os.dup2(target_fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def _watching(dag_id: str, total: int, terminal_fd: int) -> Iterator[None]:
    """Show the run's progress live while the block runs ``dag.test()``.

    The view writes to ``terminal_fd`` (a duplicate of stderr taken before Airflow's output was
    redirected; closed here), from a thread that reads the run's recorded states every half second (the newest
    run of ``dag_id`` created after the block started).
    """
    stream = os.fdopen(terminal_fd, "w", buffering=1)
    started = datetime.now(UTC)
    stop = threading.Event()
    ctx = AppContext.from_process()

    def follow(progress: Progress) -> None:
        run_id: str | None = None
        while True:
            finished = stop.is_set()  # one more look after the run ended: its final state
            with contextlib.suppress(WfeError):
                if run_id is None:
                    newest = list_runs(ctx, dag_id=dag_id, limit=1).root
                    created = newest[0].created_at if newest else None
                    if created is not None and created.tzinfo is None:
                        created = created.replace(tzinfo=UTC)
                    if created is not None and created >= started:
                        run_id = newest[0].run_id
                if run_id is not None:
                    record = run_detail(ctx, dag_id, run_id)
                    done, current = progress_of(record, total)
                    progress.update(
                        dag_id, state=record.state, done=done, current=current, ended=finished
                    )
            progress.tick()
            if finished:
                return
            stop.wait(0.5)

    with stream, Progress(stream) as progress:
        progress.add(dag_id, dag_id, total)
        watcher = threading.Thread(target=follow, args=(progress,), name="wfe-run-progress")
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join(timeout=5)


def run_workflow_once(path: Path, *, conf: dict[str, Any], quiet: bool = True) -> RunDetail:
    """Compile, run once and return the recorded history of the run.

    Raises:
        SpecError: the file is not a valid, runnable workflow.
        WfeError: Airflow's database is not ready, or the run left no record (plugin disabled).
    """
    from airflow_wfe.adapters.compile.build import build_dag
    from airflow_wfe.adapters.compile.folder import configured_dags_folder
    from airflow_wfe.core.spec.loader import load_spec

    loaded = load_spec(path)
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    log_dir = home / "wfe-run-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log_file = log_dir / f"{loaded.path.stem}-{stamp}.log"
    with contextlib.ExitStack() as stack:
        terminal = os.dup(2)  # the progress view's, before stderr goes to the log
        if quiet:
            sink = stack.enter_context(log_file.open("w"))
            stack.enter_context(airflow_output_to(sink.fileno()))
        else:
            stack.enter_context(airflow_output_to(2))
        dag = build_dag(loaded, dags_folder=configured_dags_folder())
        dag.fileloc = str(loaded.path.resolve())
        _require_airflow_db()
        _serialize(dag)
        if quiet:  # with --verbose, Airflow's own lines are the progress
            stack.enter_context(_watching(dag.dag_id, len(dag.tasks), terminal))
        else:
            os.close(terminal)
        dag_run = dag.test(run_conf=conf or None)
    if quiet:
        print(f"Airflow's logs of this run: {log_file}", file=sys.stderr)
    try:
        return run_detail(AppContext.from_process(), dag.dag_id, dag_run.run_id)
    except WfeError as exc:
        raise WfeError(
            f"the run {dag.dag_id}/{dag_run.run_id} ended {dag_run.state} in Airflow but left no "
            f"record ({exc}); is the airflow-wfe plugin installed and [wfe] enabled?"
        ) from exc
