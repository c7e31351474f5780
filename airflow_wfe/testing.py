"""Test your governed DAGs and your policies without a database server.

In the spirit of ``temporalio.testing``: what our own tests use, shipped, so a DAG author tests a
governed DAG the way airflow-wfe tests itself::

    from airflow_wfe.testing import assert_path, assert_step_state, run_dag, temporary_store

    def test_deploy_compensates(airflow_db):          # Airflow's metadata DB must exist
        with temporary_store() as ctx:
            run = run_dag(build_deploy_dag(), ctx)
            assert_path(run, ["CREATED", "VALIDATED", "RUNNING", "FAILED",
                              "COMPENSATING", "COMPENSATED"])
            assert_step_state(run, "migrate", "COMPENSATED")

Policies need nothing at all: :func:`dry_run_policy` evaluates a policy file on facts, as a gate
would. Importing this module loads pydantic and the store; DAG files never import it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models import PolicyDecision, RunDetail, StepDetail
from airflow_wfe.app.policies import dry_run, load_policies
from airflow_wfe.app.runs import run_detail
from airflow_wfe.config import get_settings
from airflow_wfe.core.metrics import RecordingEmitter
from airflow_wfe.engine.harness import get_runtime_store, reset_runtime
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import RunNotFoundError

__all__ = [
    "RecordingEmitter",
    "assert_compensated",
    "assert_path",
    "assert_run_state",
    "assert_step_state",
    "dry_run_policy",
    "history",
    "run_dag",
    "temporary_store",
]

_STORE_CONN = "AIRFLOW__WFE__STORE_CONN"


@contextmanager
def temporary_store(folder: Path | str | None = None) -> Iterator[AppContext]:
    """A fresh SQLite state store for the duration of the ``with`` block.

    ``[wfe] store_conn`` points at it (through the environment, so Airflow's listeners in this
    process record there too) and the process's cached settings, store and emitter are reset on the
    way in and out. The context's emitter is a :class:`RecordingEmitter` and its recorder writes
    through it, for code under test that records directly; the listeners keep the process's emitter.

    Args:
        folder: where to put the database file (default: a temporary folder, removed afterwards).
    """
    previous = os.environ.get(_STORE_CONN)
    with tempfile.TemporaryDirectory(prefix="wfe-test-store-") as scratch:
        where = Path(folder) if folder is not None else Path(scratch)
        os.environ[_STORE_CONN] = f"sqlite:///{where / 'wfe.db'}"
        reset_runtime()
        try:
            store = get_runtime_store()
            emitter = RecordingEmitter()
            yield AppContext(
                settings=get_settings(),
                store=store,
                emitter=emitter,
                recorder=Recorder(store, emitter),
            )
        finally:
            if previous is None:
                os.environ.pop(_STORE_CONN, None)
            else:
                os.environ[_STORE_CONN] = previous
            reset_runtime()


def history(ctx: AppContext, dag_id: str, run_id: str) -> RunDetail:
    """A recorded run as ``wfe runs show --json`` returns it."""
    return run_detail(ctx, dag_id, run_id)


def _serialize(dag: Any) -> None:
    """Store the DAG as the DAG processor would: Airflow 3 creates runs of serialized DAGs only."""
    # Airflow's DAG processing modules are heavy; only tests that run a DAG import them.
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()  # type: ignore[no-untyped-call]
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def run_dag(dag: Any, ctx: AppContext, *, conf: Mapping[str, Any] | None = None) -> RunDetail:
    """Run ``dag`` once with Airflow's ``dag.test()`` (every task in this process) and return its
    recorded history.

    Needs Airflow's metadata database (``airflow db migrate``, or ``airflow.utils.db.initdb()`` in
    a session fixture) and the plugin enabled (it is, once the package is installed).

    Raises:
        AssertionError: the run left no record (the DAG is not governed, or the plugin is off).
    """
    _serialize(dag)
    dag_run = dag.test(run_conf=dict(conf) if conf else None)
    try:
        return history(ctx, dag.dag_id, dag_run.run_id)
    except RunNotFoundError as exc:
        raise AssertionError(
            f"run {dag.dag_id}/{dag_run.run_id} ended {dag_run.state} in Airflow but left no "
            f"record ({exc}); is the DAG governed and [wfe] enabled?"
        ) from exc


def _path(transitions: Sequence[Any]) -> list[str]:
    return [t.to_state for t in transitions]


def assert_run_state(run: RunDetail, state: str) -> None:
    """The run is in ``state`` now."""
    assert run.state == state, (
        f"run {run.dag_id}/{run.run_id} is {run.state}, expected {state}; "
        f"path: {' -> '.join(_path(run.transitions))}"
    )


def assert_path(run: RunDetail, states: Sequence[str]) -> None:
    """The run went through exactly ``states``, in order (its ``to_state`` of every transition)."""
    found = _path(run.transitions)
    assert found == list(states), (
        f"run {run.dag_id}/{run.run_id} went {' -> '.join(found)}, expected {' -> '.join(states)}"
    )


def _step(run: RunDetail, step_id: str, map_index: int) -> StepDetail:
    for step in run.steps:
        if step.step_id == step_id and step.map_index == map_index:
            return step
    known = ", ".join(sorted({s.step_id for s in run.steps})) or "none"
    raise AssertionError(
        f"run {run.dag_id}/{run.run_id} has no step {step_id!r} (map index {map_index}); "
        f"steps: {known}"
    )


def assert_step_state(
    run: RunDetail,
    step_id: str,
    state: str,
    *,
    map_index: int = -1,
    path: Sequence[str] | None = None,
) -> None:
    """The step is in ``state`` (and, with ``path``, went through exactly those states)."""
    step = _step(run, step_id, map_index)
    found = _path(step.transitions)
    assert step.state == state, (
        f"step {step_id} is {step.state}, expected {state}; path: {' -> '.join(found)}"
    )
    if path is not None:
        assert found == list(path), (
            f"step {step_id} went {' -> '.join(found)}, expected {' -> '.join(path)}"
        )


def assert_compensated(
    run: RunDetail, steps: Sequence[str], *, outcome: str = "COMPENSATED"
) -> None:
    """Exactly ``steps`` were compensated, in that order, each ending ``outcome``."""
    done = [c.step_id for c in run.compensations]
    assert done == list(steps), (
        f"run {run.dag_id}/{run.run_id} compensated {done or 'nothing'}, expected {list(steps)}"
    )
    wrong = [f"{c.step_id}: {c.outcome}" for c in run.compensations if c.outcome != outcome]
    assert not wrong, f"compensations that did not end {outcome}: {', '.join(wrong)}"


def dry_run_policy(
    policy: Path | str | Sequence[Path | str], facts: Mapping[str, Any] | None = None
) -> PolicyDecision:
    """What a gate evaluating ``policy`` (a file, or several) would decide on ``facts``.

    Facts as ``wfe policy test --facts`` takes them: ``run``, ``step``, ``cost`` (``reserve``,
    ``spent``), ``now``; what ``cost.spent`` does not say was spent is 0.

    Raises:
        SpecError: a policy file is invalid (with file and line).
        PolicyError: a rule cannot be evaluated on these facts (a gate fails closed on it too).
    """
    files = [policy] if isinstance(policy, str | Path) else list(policy)
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"no policy file {', '.join(missing)}")
    return dry_run(load_policies([str(f) for f in files], Path()), facts or {})
