"""A broken workflow file becomes the reporter file's import error; its neighbours still load."""

from __future__ import annotations

import pytest
from airflow_env import scenario

pytestmark = pytest.mark.integration

FOLDER = scenario("broken")


def test_broken_file_is_reported_and_the_rest_loads(airflow_db: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    # The loader raises a WorkflowLoadWarning; Airflow captures it and re-emits it as UserWarning.
    with pytest.warns(UserWarning, match=r"t_broken\.yaml:8: steps\.one\.retry\.backof"):
        bag = DagBag(dag_folder=str(FOLDER))
    assert "wfe_t_fine_next_to_broken" in bag.dag_ids
    assert "wfe_t_yaml_broken" not in bag.dag_ids
    ((reporter, message),) = bag.import_errors.items()
    assert reporter.endswith("wfe_workflow_errors.py")
    assert "SpecError" in message
    broken = FOLDER / "workflows" / "t_broken.yaml"
    assert f"{broken}:8: steps.one.retry.backof: unknown key (did you mean 'backoff'?)" in message
    assert "fine.yaml" not in message
