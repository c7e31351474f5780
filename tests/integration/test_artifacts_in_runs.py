"""A real governed run reads the active artifact version, and the store remembers which one."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_wfe.engine.harness import get_runtime_store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_runtime")]


def test_a_run_records_the_artifact_version_it_used_and_a_rollback_changes_the_next_run(
    dagbag: Any,
) -> None:
    registry = get_runtime_store().artifacts
    v1 = registry.register("prompts/greeting", b"Hello {name}", actor="test").version
    registry.activate("prompts/greeting", v1, actor="test")
    v2 = registry.register("prompts/greeting", b"Dear {name}, welcome", actor="test").version
    registry.activate("prompts/greeting", v2, actor="test")

    dag = dagbag.get_dag("wfe_t_artifacts")
    first = dag.test()
    assert first.state == "success"
    assert first.get_task_instance("render_prompt").xcom_pull() == "Dear auditor, welcome"

    registry.rollback("prompts/greeting", actor="test", reason="v2 confused people")
    second = dag.test()
    assert second.get_task_instance("render_prompt").xcom_pull() == "Hello auditor"

    uses = {(u.run_id, u.version) for u in registry.runs_using("prompts/greeting")}
    assert uses == {(first.run_id, v2), (second.run_id, v1)}
