"""DAG shapes whose recorded histories must agree with Airflow's own task-instance states.

Each DAG exercises a way Airflow decides a task's fate without (or besides) running it: branching,
trigger rules, task groups, mapped tasks (including an empty expansion), setup/teardown, and a task
that skips itself.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task
from airflow.sdk.exceptions import AirflowSkipException

START = datetime(2026, 1, 1)
TAGS = ["wfe", "test"]

with DAG("wfe_t_branch", schedule=None, start_date=START, tags=TAGS) as branch_dag:

    @task.branch
    def choose() -> str:
        return "left"

    @task
    def left() -> str:
        return "went left"

    @task
    def right() -> str:
        return "went right"

    @task(trigger_rule="none_failed_min_one_success")
    def join() -> None:
        return None

    @task
    def after_right() -> None:
        return None

    chosen = choose()
    right_task = right()
    chosen >> [left(), right_task]
    right_task >> after_right()
    [branch_dag.get_task("left"), right_task] >> join()


with DAG("wfe_t_trigger_rules", schedule=None, start_date=START, tags=TAGS):

    @task(retries=0)
    def boom() -> None:
        raise ValueError("boom")

    @task(trigger_rule="all_done")
    def cleanup() -> None:
        return None

    @task(trigger_rule="one_failed")
    def alert() -> None:
        return None

    @task
    def never() -> None:
        return None

    failing = boom()
    failing >> [cleanup(), alert(), never()]


with DAG("wfe_t_groups_mapped", schedule=None, start_date=START, tags=TAGS):

    @task
    def create_cluster() -> str:
        return "cluster-1"

    @task
    def delete_cluster() -> None:
        return None

    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def nothing() -> list[int]:
        return []

    @task
    def double(value: int) -> int:
        return value * 2

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    setup = create_cluster().as_setup()
    teardown = delete_cluster().as_teardown(setups=setup)
    with TaskGroup("work") as work:
        total(double.expand(value=numbers()))
        double.override(task_id="double_none").expand(value=nothing())
    setup >> work >> teardown


with DAG("wfe_t_skip_self", schedule=None, start_date=START, tags=TAGS):

    @task
    def maybe() -> None:
        raise AirflowSkipException("nothing to do today")

    @task
    def downstream() -> None:
        return None

    maybe() >> downstream()


with DAG("wfe_t_ungoverned", schedule=None, start_date=START, tags=["test"]):

    @task
    def plain() -> int:
        return 1

    plain()
