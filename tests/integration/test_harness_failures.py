"""A harness failure never breaks a governed run, unless ``[wfe] fail_closed`` asks for exactly that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


@pytest.fixture
def broken_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/no/such/folder/wfe.db"
    monkeypatch.setenv("AIRFLOW__WFE__STORE_CONN", url)
    monkeypatch.setenv("AIRFLOW__WFE__SPOOL_PATH", str(tmp_path / "spool"))
    reset_runtime()
    return url


def test_unreachable_store_is_logged_and_the_run_carries_on(
    dagbag: Any, broken_store: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="airflow_wfe")
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "success"
    # With fail_closed off, what the store could not take waits in the spool (docs/reliability.md).
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("airflow_wfe")]
    spooled = [m for m in messages if " spooled to " in m]
    assert spooled, messages
    assert "no/such/folder does not exist" in spooled[0]
    assert list((tmp_path / "spool").glob("*.jsonl"))


def test_fail_closed_stops_the_task_before_it_executes(
    dagbag: Any, broken_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__FAIL_CLOSED", "True")
    reset_runtime()
    dag_run = dagbag.get_dag("wfe_example_success").test()
    assert dag_run.state == "failed"
    states = {
        ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()
    }
    assert states["extract"] == "failed"
    assert states["load"] == "upstream_failed"


def test_a_late_report_that_breaks_the_state_machine_is_refused(dagbag: Any) -> None:
    from airflow_wfe.core.states import StepState
    from airflow_wfe.engine.harness import get_recorder
    from airflow_wfe.exceptions import IllegalTransitionError

    dag_run = dagbag.get_dag("wfe_t_skip_self").test()
    assert dag_run.state == "success"
    recorder = get_recorder()
    with pytest.raises(IllegalTransitionError, match="cannot go SKIPPED → RUNNING; allowed: none"):
        recorder.step(
            dag_run.dag_id, dag_run.run_id, "maybe", StepState.RUNNING, actor="worker", try_number=1
        )
    record = recorder.store.get_run(dag_run.dag_id, dag_run.run_id)
    maybe = next(s for s in record.steps if s.step_id == "maybe")
    assert maybe.state == "SKIPPED"
    assert [t.to_state for t in maybe.transitions] == ["PENDING", "RUNNING", "SKIPPED"]


def test_the_fail_closed_check_stays_out_of_the_serialized_dag(dagbag: Any) -> None:
    """The check shadows ``pre_execute`` instead of filling the serialized ``pre_execute=`` hook:
    Airflow serializes a callable by reading its source, at a cost per task and serialization."""
    import json

    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_wfe.adapters.cluster_policy import FailClosedCheck

    dag = dagbag.get_dag("wfe_example_success")
    task = dag.get_task("extract")
    assert isinstance(vars(task)["pre_execute"], FailClosedCheck)
    assert task._pre_execute_hook is None
    text = json.dumps(DagSerialization.serialize_dag(dag))
    assert "FailClosedCheck" not in text
    assert "harness_failure_for" not in text


def test_the_fail_closed_check_runs_the_operators_own_pre_execute() -> None:
    from airflow.sdk import DAG, BaseOperator

    from airflow_wfe.adapters.cluster_policy import FailClosedCheck, task_policy
    from airflow_wfe.config import GOVERNED_TAG

    seen: list[str] = []

    class Audited(BaseOperator):
        def pre_execute(self, context: Any) -> None:
            seen.append(context["marker"])

    # A DAG of its own: the session's dagbag is shared, a task added to one of its DAGs would run
    # in every later test of that DAG.
    with DAG("wfe_t_own_pre_execute", schedule=None, tags=[GOVERNED_TAG]) as dag:
        task = Audited(task_id="audited_pre_execute")
    task_policy(task)
    task_policy(task)  # idempotent: one check, not a chain of two
    check = vars(task)["pre_execute"]
    assert isinstance(check, FailClosedCheck)
    assert check.chained is None

    class _TI:
        dag_id, run_id, task_id, map_index, try_number = dag.dag_id, "r", task.task_id, -1, 1

    task.pre_execute({"ti": _TI(), "task": task, "marker": "ran"})
    assert seen == ["ran"]


_MAPPED_DAG = """
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag, task

MARKERS = Path({markers!r})


@dag(dag_id="wfe_t_mapped_fail_closed", schedule=None, start_date=datetime(2026, 1, 1), tags=["wfe"])
def wfe_t_mapped_fail_closed():
    @task
    def touch(value: int) -> int:
        (MARKERS / str(value)).write_text("executed")
        return value

    touch.expand(value=[1, 2, 3])


wfe_t_mapped_fail_closed()
"""


def test_fail_closed_stops_mapped_tasks_before_they_execute(
    broken_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, airflow_db: None
) -> None:
    """A mapped task runs as an operator Airflow builds from the mapped one at run time
    (``MappedOperator.unmap``); the check must reach that operator, or the task executes."""
    import json

    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    folder = tmp_path / "dags"
    markers = tmp_path / "markers"
    folder.mkdir()
    markers.mkdir()
    (folder / "wfe_t_mapped_fail_closed.py").write_text(_MAPPED_DAG.format(markers=str(markers)))
    monkeypatch.setenv("AIRFLOW__WFE__FAIL_CLOSED", "True")
    reset_runtime()
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    from airflow_wfe.testing import _serialize

    dag = bag.get_dag("wfe_t_mapped_fail_closed")
    serialized = json.dumps(DagSerialization.serialize_dag(dag))
    assert "CheckedUnmap" not in serialized  # the check stays out of what Airflow stores
    _serialize(dag)  # Airflow 3 creates runs of serialized DAGs only
    dag_run = dag.test()
    assert dag_run.state == "failed"
    states = {
        (ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state))
        for ti in dag_run.get_task_instances()
    }
    assert states == {("touch", i): "failed" for i in range(3)}, states
    assert sorted(p.name for p in markers.iterdir()) == []  # none of them executed
