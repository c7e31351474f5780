"""Secrets and markup through every face: the store, the exports (CLI and REST), the REST answers,
the pages, and the logs.

One real governed run (``dag.test()``) of a DAG written for this module touches every kind of
secret an author has: a connection's password and a sensitive key of its extra, an Airflow Variable
with a sensitive name (``wfe_api_key``), a nested run parameter (``params.db.password``) and nested
run conf (``conf.cfg.secret``). Its steps then put all of them where the harness records text: a
cost's detail, a business metric's unit, a policy gate's facts, and the error the last step fails
with. Every table, every export, every REST answer and every page of Airflow's own API app (in
process, with its auth, as tests/integration/test_api.py runs it) and every log record emitted
while the run ran must be free of them.

The same store also holds markup where a person or an author can put text (run and step ids,
actors, reasons, a policy decision's messages, an artifact's media type and activation reason, a
cost's detail): every page must show it as text, never as markup.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from app_users import users_with_an_outsider
from test_ui_browser import browser  # noqa: F401 - chromium through Playwright, or a skip

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN_PASSWORD = "conn-pw-Zr81Tq04"
CONN_EXTRA = "conn-extra-token-Hb63Wd29"
VARIABLE = "var-api-key-Mx57Pa12"
PARAM = "param-nested-pw-Kc90Vs33"
CONF = "conf-nested-secret-Ue24Ny78"
SECRETS = (CONN_PASSWORD, CONN_EXTRA, VARIABLE, PARAM, CONF)
EACH_SECRET = pytest.mark.parametrize(
    "secret",
    [
        pytest.param(CONN_PASSWORD, id="connection-password"),
        pytest.param(CONN_EXTRA, id="connection-extra"),
        pytest.param(VARIABLE, id="variable-api_key"),
        pytest.param(PARAM, id="params.db.password"),
        pytest.param(CONF, id="conf.cfg.secret"),
    ],
)
DAG_ID = "wfe_t_every_face_secrets"

DAG_FILE = f'''
"""Touches every kind of secret, then records text that quotes them all (the worst author)."""
from datetime import datetime

from airflow.sdk import DAG, BaseHook, Variable, task

from airflow_wfe import policy_gate, record_business_metric, record_cost


def _everything(params, dag_run):
    conn = BaseHook.get_connection("wfe_leaky_db")
    return " ".join(
        [
            conn.password,
            conn.extra_dejson["api_token"],
            Variable.get("wfe_api_key"),
            params["db"]["password"],
            dag_run.conf["cfg"]["secret"],
        ]
    )


with DAG(
    dag_id="{DAG_ID}",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["wfe"],
    params={{"db": {{"password": "placeholder", "host": "db1"}}}},
):

    @task
    def spend(params=None, dag_run=None):
        everything = _everything(params, dag_run)
        record_cost(0.25, detail=f"tokens bought with {{everything}}")
        record_business_metric("leads", 3.0, unit=f"EUR {{everything}}")

    @policy_gate(policies=[])
    def check():
        from airflow.sdk import get_current_context

        context = get_current_context()
        everything = _everything(context["params"], context["dag_run"])
        return {{"endpoint": f"https://etl:{{everything}}@db1/x", "tries": 1}}

    @task(retries=0)
    def leak(params=None, dag_run=None):
        raise RuntimeError(f"cannot log in: {{_everything(params, dag_run)}}")

    spend() >> check() >> leak()
'''

#: Markup a person or an author can put into recorded text.
SCRIPT = "<script>alert('wfe')</script>"
IMAGE = '<img src=x onerror="alert(1)">'
SVG = "<svg onload=alert(2)>"
HOSTILE_RUN = f"run-{SVG}"
HOSTILE_STEP = f"step-{SCRIPT}"
MARKUP = (SCRIPT, IMAGE, SVG, "<svg onload", "<img src=x", "<script>alert", 'onerror="alert')


@dataclass
class Faces:
    client: Any
    tokens: dict[str, str]
    run_id: str
    store_url: str
    log_text: str
    task_logs: str

    def get(self, path: str, user: str = "admin", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return self.client.get(path, headers=headers, **kwargs)


class _Everything(logging.Handler):
    """Every record of the wfe loggers emitted in this process while the run ran, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("airflow_wfe"):
            return
        try:
            text = f"{record.name} {record.getMessage()}"
        except Exception:  # a record whose args do not format: keep its raw parts
            text = f"{record.name} {record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.lines.append(text)


def _record_markup() -> None:
    """Markup in every text a person or an author can record, through the harness's own paths."""
    from datetime import UTC, datetime

    from airflow_wfe.core.audit.events import AuditEvent
    from airflow_wfe.core.states import StepState
    from airflow_wfe.engine.harness import get_recorder, get_runtime_store

    recorder = get_recorder()
    recorder.run_started(DAG_ID, HOSTILE_RUN, actor=f"user:{IMAGE}", reason=IMAGE)
    recorder.step(DAG_ID, HOSTILE_RUN, HOSTILE_STEP, StepState.RUNNING, actor="worker")
    recorder.step(
        DAG_ID, HOSTILE_RUN, HOSTILE_STEP, StepState.FAILED, actor="worker", reason=SCRIPT
    )
    recorder.run_finished(DAG_ID, HOSTILE_RUN, succeeded=False, actor="scheduler", reason=SVG)
    store = get_runtime_store()
    store.record_cost(DAG_ID, HOSTILE_RUN, HOSTILE_STEP, 1.0, detail=SCRIPT)
    store.record_events(
        "markup",
        [
            AuditEvent(
                type="manual.action",
                actor=f"user:{SCRIPT}",
                at=datetime.now(UTC),
                dag_id=DAG_ID,
                run_id=HOSTILE_RUN,
                step_id=HOSTILE_STEP,
                payload={"note": IMAGE, "message": SVG},
            )
        ],
    )
    artifact = store.artifacts.register(
        "prompts/markup", b"hello", media_type=f"text/plain;{SCRIPT}", actor=f"user:{IMAGE}"
    )
    store.artifacts.activate("prompts/markup", artifact.version, actor="user:x", reason=IMAGE)


@pytest.fixture(scope="module")
def faces(
    airflow_db: None, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Faces]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.dag_processing.dagbag import DagBag
    from fastapi.testclient import TestClient

    folder = tmp_path_factory.mktemp("every-face")
    # In the tests' DAGs folder (the bundle dag.test() serializes from) for this module only.
    dag_file = airflow_home / "dags" / f"{DAG_ID}.py"
    dag_file.write_text(DAG_FILE)
    request_cleanup = dag_file.unlink
    store_url = f"sqlite:///{folder / 'wfe.db'}"
    handler = _Everything()
    root = logging.getLogger()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__WFE__STORE_CONN", store_url)
        patch.setenv(
            "AIRFLOW_CONN_WFE_LEAKY_DB",
            json.dumps(
                {
                    "conn_type": "generic",
                    "login": "etl",
                    "password": CONN_PASSWORD,
                    "host": "db1",
                    "extra": {"api_token": CONN_EXTRA, "region": "eu-1"},
                }
            ),
        )
        patch.setenv("AIRFLOW_VAR_WFE_API_KEY", VARIABLE)
        reset_runtime()
        bag = DagBag(dag_folder=str(dag_file))
        assert not bag.import_errors, bag.import_errors
        root.addHandler(handler)
        level = root.level
        root.setLevel(logging.DEBUG)
        # An in-process `wfe` command earlier in the session quiets the package's logger (the CLI
        # sets it to WARNING for its own output); a task process never runs it.
        wfe_logger = logging.getLogger("airflow_wfe")
        wfe_level = wfe_logger.level
        wfe_logger.setLevel(logging.NOTSET)
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                run = bag.get_dag(DAG_ID).test(
                    run_conf={"db": {"password": PARAM, "host": "db1"}, "cfg": {"secret": CONF}}
                )
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            wfe_logger.setLevel(wfe_level)
        # What the loggers printed (structlog renders to the console): the wfe loggers' lines. A
        # task's own traceback printed by ``dag.test()`` in process is Airflow's, not masked there
        # (a real task's log is, by the task runner), so it is not held against the harness.
        handler.lines += [line for line in printed.getvalue().splitlines() if "airflow_wfe" in line]
        assert run.state == "failed"
        _record_markup()
        task_logs = "\n".join(
            p.read_text(errors="replace")
            for p in (airflow_home / "logs").rglob("*")
            if p.is_file() and DAG_ID in str(p)
        )
        with TestClient(create_app()) as client:
            tokens = users_with_an_outsider(patch, get_auth_manager(), DAG_ID)
            yield Faces(client, tokens, run.run_id, store_url, "\n".join(handler.lines), task_logs)
    request_cleanup()
    reset_runtime()


def _leak(secret: str, text: str) -> str | None:
    """Where ``secret`` is in ``text`` (the context an investigation needs), or None."""
    at = text.find(secret)
    return None if at < 0 else f"...{text[max(0, at - 160) : at + 40]}..."


def test_the_run_recorded_what_carries_the_secrets(faces: Faces) -> None:
    """The run did put each kind of text in the store (else the checks below prove nothing)."""
    from airflow_wfe.store import SqlStore

    store = SqlStore(faces.store_url)
    record = store.get_run(DAG_ID, faces.run_id)
    leak = next(s for s in record.steps if s.step_id == "leak")
    assert "cannot log in: ***" in (leak.transitions[-1].reason or "")
    dump = _tables(faces.store_url)
    for kept in ("tokens bought with ***", "EUR ***", "https://etl:***", "db1", "cannot log in"):
        assert kept in dump, kept


def _tables(url: str) -> str:
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(url)
    metadata = MetaData()
    with engine.connect() as connection:
        metadata.reflect(connection)
        text = "\n".join(
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in connection.execute(select(table))
        )
    engine.dispose()
    return text


@EACH_SECRET
def test_no_secret_in_any_table(faces: Faces, secret: str) -> None:
    assert _leak(secret, _tables(faces.store_url)) is None


@EACH_SECRET
def test_no_secret_in_any_export(
    faces: Faces, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_wfe.cli.main import main

    for fmt in ("jsonl", "csv"):
        assert main(["audit", "export", "--format", fmt]) == 0
        printed = capsys.readouterr().out
        assert faces.run_id in printed
        assert _leak(secret, printed) is None, fmt
        served = faces.get(f"/wfe/api/v1/audit/export?format={fmt}")
        assert served.status_code == 200, served.text
        assert faces.run_id in served.text
        assert _leak(secret, served.text) is None, fmt


def _fill(path: str, faces: Faces) -> str:
    values = {"dag_id": DAG_ID, "run_id": faces.run_id, "task_id": "check"}
    values["name"] = "prompts/markup"
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: values[m.group(1)], path)


@EACH_SECRET
def test_no_secret_in_any_rest_answer(faces: Faces, secret: str) -> None:
    schema = faces.get("/wfe/api/v1/openapi.json").json()
    answered = 0
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        answer = faces.get("/wfe" + _fill(path, faces))
        assert answer.status_code in (200, 404), (path, answer.status_code, answer.text)
        assert _leak(secret, answer.text) is None, path
        answered += answer.status_code == 200
    assert answered >= 10


def _pages(faces: Faces) -> list[str]:
    from fastapi.routing import APIRoute

    from airflow_wfe.ui.app import build_app

    paths = [
        _fill(route.path, faces)
        for route in build_app().routes
        if isinstance(route, APIRoute) and "GET" in route.methods
    ]
    from urllib.parse import quote

    # The run holding the markup, and its step, besides the leaky run.
    paths.append(f"/runs/{DAG_ID}/{quote(HOSTILE_RUN, safe='')}")
    paths += ["/runs?dag_id=" + DAG_ID, "/audit?dag_id=" + DAG_ID]
    return paths


@EACH_SECRET
def test_no_secret_in_any_page(faces: Faces, secret: str) -> None:
    shown = 0
    for path in _pages(faces):
        page = faces.get(f"/wfe/ui{path}")
        assert page.status_code in (200, 404), (path, page.status_code)
        assert _leak(secret, page.text) is None, path
        shown += page.status_code == 200
    assert shown >= 6


@EACH_SECRET
def test_no_secret_in_the_logs(faces: Faces, secret: str) -> None:
    """What the wfe loggers said while the run ran (records and printed lines), and the task logs
    Airflow wrote for the run (when it writes any)."""
    assert "wfe.business_metric" in faces.log_text  # the metric's log line, with its unit
    assert _leak(secret, faces.log_text) is None
    assert _leak(secret, faces.task_logs) is None


def test_markup_is_text_on_every_page(faces: Faces) -> None:
    from urllib.parse import quote

    seen = ""
    for path in _pages(faces):
        page = faces.get(f"/wfe/ui{path}")
        if page.status_code != 200:
            continue
        for markup in MARKUP:
            assert markup not in page.text, (path, markup)
        seen += page.text
    # The markup was on the pages, as text.
    assert "&lt;script&gt;alert(&#39;wfe&#39;)&lt;/script&gt;" in seen
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in seen
    assert "&lt;svg onload=alert(2)&gt;" in seen
    assert quote(HOSTILE_RUN, safe="") in seen


@pytest.mark.browser
def test_no_dialog_fires_when_chromium_renders_every_page(faces: Faces, browser: Any) -> None:  # noqa: F811
    """Each page's HTML rendered by chromium without its Content-Security-Policy (``set_content``
    has no headers), so only the escaping stands between the markup and a script: no dialog
    opens, no element the markup would have made exists."""
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    rendered = 0
    for path in _pages(faces):
        answer = faces.get(f"/wfe/ui{path}")
        if answer.status_code != 200:
            continue
        page.set_content(answer.text, wait_until="load")
        page.wait_for_timeout(50)  # an onload/onerror handler would have run by now
        assert page.locator("svg[onload], img[onerror], script:not([src])").count() == 0, path
        assert "alert" not in "".join(
            page.locator("script").evaluate_all("nodes => nodes.map(n => n.textContent)")
        ), path
        rendered += 1
    assert rendered >= 6
    assert dialogs == []
