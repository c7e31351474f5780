"""Illegal transitions forced through the REST API and the CLI: a clear 4xx or CLI error, no write.

Issue #22's bad-input rule for the two faces that change state by hand (``POST
/wfe/api/v1/runs/{dag_id}/{run_id}/compensate`` and ``wfe compensate``). Runs are made by
``dag.test()`` into a store of this module's own: a COMPLETED run (``wfe_example_success``), a
COMPENSATED one (``wfe_example_saga``), a FAILED one of a DAG that declares no compensation
(``wfe_example_retry_fail``), and a run still RUNNING (recorded through the recorder, as the
scheduler would). Each is asked to move where the state rules (or the DAG) do not allow, in every
way a caller can: without and with ``force``, an unknown run or DAG, and (REST) malformed bodies.

For each: the REST answer is a 4xx in the one error shape (``code``, ``message``, ``detail``) with
no traceback, the CLI exits 1 (2 for a usage error) with the reason on stderr, nothing on stdout
and no traceback; and nothing is written: every ``wfe_`` table of the store is byte-for-byte what
it was (no partial write: no state, no audit event, no compensation request) and Airflow's task
instances of the run are untouched (nothing cleared).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from app_users import users_with_an_outsider

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API = "/wfe/api/v1"
SUCCESS, SAGA, NO_SAGA = "wfe_example_success", "wfe_example_saga", "wfe_example_retry_fail"
STILL_RUNNING = "manual__still-running"
#: An artifact with one version, active: there is nothing to roll back to.
ARTIFACT = "prompts/only-one-version"
WFE = str(Path(sys.executable).parent / "wfe")


class World:
    """The store, the runs made, the in-process API client and a token per user."""

    def __init__(self, store: Path, runs: dict[str, str], client: Any, tokens: dict[str, str]):
        self.store = store
        self.runs = runs
        self.client = client
        self.tokens = tokens

    def snapshot(self) -> dict[str, str]:
        """A digest of every wfe table's rows: any write, update or delete changes one."""
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as db:
            tables = [
                name
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'wfe%'"
                )
            ]
            return {
                table: hashlib.sha256(
                    repr(db.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()).encode()
                ).hexdigest()
                for table in tables
            }

    def task_instances(self, dag_id: str, run_id: str) -> list[tuple[Any, ...]]:
        """Airflow's task instances of the run: task, state, try, end (a clear changes them)."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(
                    TaskInstance.task_id,
                    TaskInstance.state,
                    TaskInstance.try_number,
                    TaskInstance.end_date,
                )
                .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
                .order_by(TaskInstance.task_id)
            ).all()
        return [tuple(row) for row in rows]

    def post_compensate(self, dag_id: str, run_id: str, body: Any) -> Any:
        return self.post(f"{API}/runs/{dag_id}/{quote(run_id, safe='')}/compensate", body)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {self.tokens['admin']}"}
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{self.store}"}
        return subprocess.run(
            [WFE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )


@pytest.fixture(scope="module")
def world(
    airflow_db: None, dagbag: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    from airflow_wfe.app import artifacts
    from airflow_wfe.app.context import AppContext
    from airflow_wfe.engine.harness import get_recorder

    store = tmp_path_factory.mktemp("illegal-store") / "wfe.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{store}")
        reset_runtime()
        runs = {dag_id: dagbag.get_dag(dag_id).test().run_id for dag_id in (SUCCESS, SAGA, NO_SAGA)}
        get_recorder().run_started(SAGA, STILL_RUNNING, actor="scheduler", reason="started")
        ctx = AppContext.from_process()
        artifacts.register(
            ctx, ARTIFACT, b"v1", media_type="text/plain", actor="test", activate_it=True
        )
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            tokens = users_with_an_outsider(patch, get_auth_manager(), SUCCESS)
            yield World(store, runs, client, tokens)
    reset_runtime()


def test_the_runs_are_where_the_cases_need_them(world: World) -> None:
    from airflow_wfe.engine.harness import get_recorder

    store = get_recorder().store
    states = {dag: store.get_run(dag, run).state for dag, run in world.runs.items()}
    states[f"{SAGA} (still running)"] = store.get_run(SAGA, STILL_RUNNING).state
    assert states == {
        SUCCESS: "COMPLETED",
        SAGA: "COMPENSATED",
        NO_SAGA: "FAILED",
        f"{SAGA} (still running)": "RUNNING",
    }


#: (case, DAG, run (None: the DAG's run made by dag.test()), force, HTTP status, code, words).
REFUSALS = [
    ("completed", SUCCESS, None, False, 409, "state_error", "--force"),
    ("compensated", SAGA, None, True, 409, "state_error", "is COMPENSATED"),
    ("running", SAGA, STILL_RUNNING, True, 409, "state_error", "is RUNNING"),
    ("no compensation", NO_SAGA, None, False, 409, "state_error", "declares no compensation"),
    ("unknown run", SUCCESS, "manual__no-such-run", True, 404, "run_not_found", "no governed run"),
    ("unknown DAG", "no_such_dag", "manual__x", False, 404, "run_not_found", "no governed run"),
]


def _run_of(world: World, dag_id: str, run_id: str | None) -> str:
    return run_id if run_id is not None else world.runs[dag_id]


def _api_case(case: tuple[Any, ...]) -> Any:
    return pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize(
    ("dag_id", "run_id", "force", "status", "code", "words"),
    [_api_case(case) for case in REFUSALS],
)
def test_the_api_refuses_an_illegal_compensation_and_writes_nothing(
    world: World,
    dag_id: str,
    run_id: str | None,
    force: bool,
    status: int,
    code: str,
    words: str,
) -> None:
    run = _run_of(world, dag_id, run_id)
    before, tis = world.snapshot(), world.task_instances(dag_id, run)
    answer = world.post_compensate(dag_id, run, {"force": force, "reason": "test"})
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"code", "message", "detail"}, body
    assert body["code"] == code, body
    assert words in body["message"], body
    assert "Traceback" not in answer.text
    assert world.snapshot() == before, "the refused request wrote to the store"
    assert world.task_instances(dag_id, run) == tis, "the refused request cleared tasks"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"force": "please"}, 422, "invalid_request"),
        ({"force": True, "forse": True}, 422, "invalid_request"),
        ({"force": True, "reason": "x" * 2001}, 422, "invalid_request"),
        ({"force": True, "reason": "x" * (1 << 20)}, 422, "invalid_request"),
        (["force"], 422, "invalid_request"),
        (None, 415, "unsupported_media_type"),
    ],
    ids=[
        "wrong-type",
        "unknown-field",
        "reason-too-long",
        "reason-1MiB",
        "not-an-object",
        "no-body",
    ],
)
def test_the_api_refuses_a_malformed_compensation_request_and_writes_nothing(
    world: World, body: Any, status: int, code: str
) -> None:
    # The COMPLETED run: a well-formed request with force would compensate it.
    run = world.runs[SUCCESS]
    before, tis = world.snapshot(), world.task_instances(SUCCESS, run)
    answer = world.post_compensate(SUCCESS, run, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code, answer.text
    assert "Traceback" not in answer.text
    assert world.snapshot() == before
    assert world.task_instances(SUCCESS, run) == tis


@pytest.mark.parametrize(
    ("dag_id", "run_id", "force", "words"),
    [(case[1], case[2], case[3], case[6]) for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_the_cli_refuses_an_illegal_compensation_and_writes_nothing(
    world: World, dag_id: str, run_id: str | None, force: bool, words: str
) -> None:
    run = _run_of(world, dag_id, run_id)
    before, tis = world.snapshot(), world.task_instances(dag_id, run)
    done = world.cli("compensate", dag_id, run, *(["--force"] if force else []))
    assert done.returncode == 1, done.stdout + done.stderr
    assert words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""
    assert world.snapshot() == before, "the refused command wrote to the store"
    assert world.task_instances(dag_id, run) == tis, "the refused command cleared tasks"


def test_the_cli_calls_a_malformed_command_a_usage_error_and_writes_nothing(world: World) -> None:
    before = world.snapshot()
    for args in (("compensate",), ("compensate", SUCCESS), ("compensate", SUCCESS, "r", "--frce")):
        done = world.cli(*args)
        assert done.returncode == 2, (args, done.stdout + done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
    assert world.snapshot() == before


#: (case, artifact, HTTP status, code): rollbacks the artifact registry cannot make.
ROLLBACKS = [
    # A conflict with what the store holds (ArtifactConflictError), as the exception tree says.
    ("nothing to roll back to", ARTIFACT, 409, "artifact_conflict"),
    ("unknown artifact", "prompts/no-such-artifact", 404, "artifact_not_found"),
]


@pytest.mark.parametrize(
    ("name", "status", "code"), [case[1:] for case in ROLLBACKS], ids=[c[0] for c in ROLLBACKS]
)
def test_an_impossible_rollback_is_refused_by_api_and_cli_and_writes_nothing(
    world: World, name: str, status: int, code: str
) -> None:
    before = world.snapshot()
    answer = world.post(f"{API}/artifacts/{name}/rollback", {"reason": "test"})
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code, answer.text
    assert "Traceback" not in answer.text
    done = world.cli("artifacts", "rollback", name, "--reason", "test")
    assert done.returncode == 1, done.stdout + done.stderr
    assert name in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert world.snapshot() == before, "the refused rollback wrote to the store"


def test_an_answer_to_a_gate_that_is_not_waiting_is_a_404_and_writes_nothing(world: World) -> None:
    run = world.runs[SUCCESS]
    before, tis = world.snapshot(), world.task_instances(SUCCESS, run)
    answer = world.post(
        f"{API}/runs/{SUCCESS}/{quote(run, safe='')}/gates/extract/answer",
        {"chosen_options": ["Approve"]},
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "not_found", answer.text
    assert world.snapshot() == before
    assert world.task_instances(SUCCESS, run) == tis
