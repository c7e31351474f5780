"""Parse-time governance through Airflow's own DAG parsing (DagBag, cluster policy entry point)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime", "airflow_db")]

UNOWNED = """
from datetime import datetime
from airflow.sdk import DAG, task
from airflow_wfe.adapters.saga.declare import side_effects

with DAG(dag_id="wfe_pt_unowned", start_date=datetime(2026, 1, 1), schedule=None, tags=["wfe"]):
    @task
    def pay() -> None: ...

    side_effects(pay())
"""

COMPLIANT = """
from datetime import datetime, timedelta
from airflow.sdk import DAG, task
from airflow_wfe import compensate

def refund(result, idempotency_key): ...

with DAG(
    dag_id="wfe_pt_compliant",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    tags=["wfe", "payments"],
    default_args={"owner": "payments", "retries": 2,
                  "execution_timeout": timedelta(minutes=5)},
):
    @task
    def pay() -> str:
        return "p1"

    compensate(pay(), refund)
"""

UNGOVERNED = UNOWNED.replace('tags=["wfe"]', 'tags=["other"]').replace(
    "wfe_pt_unowned", "wfe_pt_ungoverned"
)


def _bag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))


def test_a_governed_dag_without_owner_is_refused_with_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__PARSE_TIME_CHECKS", "all")
    reset_runtime()
    folder = tmp_path / "dags"
    _write(folder, "unowned.py", UNOWNED)
    _write(folder, "compliant.py", COMPLIANT)
    _write(folder, "ungoverned.py", UNGOVERNED)
    bag = _bag(folder)
    assert sorted(bag.dag_ids) == ["wfe_pt_compliant", "wfe_pt_ungoverned"]
    (error,) = [e for f, e in bag.import_errors.items() if f.endswith("unowned.py")]
    assert "DAG 'wfe_pt_unowned' breaks airflow-wfe's parse-time checks" in error
    for expected in (
        "the DAG has no tags besides 'wfe'",
        "task 'pay' has no owner",
        "task 'pay' has no retries",
        "task 'pay' has no execution_timeout",
        "task 'pay' has side effects but neither compensate() nor irreversible()",
    ):
        assert expected in error, error


def test_checks_are_off_by_default(tmp_path: Path) -> None:
    reset_runtime()
    folder = tmp_path / "dags"
    _write(folder, "unowned.py", UNOWNED)
    bag = _bag(folder)
    assert bag.dag_ids == ["wfe_pt_unowned"]
    assert not bag.import_errors


def test_an_unknown_check_names_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_wfe.config import get_settings
    from airflow_wfe.exceptions import ConfigError

    monkeypatch.setenv("AIRFLOW__WFE__PARSE_TIME_CHECKS", "owner,colour")
    reset_runtime()
    with pytest.raises(ConfigError, match=r"parse_time_checks.*unknown check\(s\) colour"):
        get_settings()
