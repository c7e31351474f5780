"""The REST API inside Airflow's own API app (``create_app()``, in process), with Airflow's auth.

Two governed runs are made by ``dag.test()`` into a state store of this module's own: one of
``wfe_example_success`` (a DAG every user here may read) and one of ``wfe_example_saga`` (hidden
from the ``outsider``, a viewer that the auth manager allows on the first DAG only). The users are
SimpleAuthManager JWTs: ``viewer`` reads, ``user`` acts, ``admin`` does all. Every endpoint is taken
from the app's OpenAPI schema, so an endpoint added without an auth check fails these tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration]

OPEN_DAG = "wfe_example_success"
SECRET_DAG = "wfe_example_saga"
API = "/wfe/api/v1"


#: A run whose ids and reasons are markup: the pages must show them as text.
HOSTILE_RUN = "<svg onload=alert(1)>\"'&"
HOSTILE_STEP = "<script>alert('step')</script>"
HOSTILE_REASON = '<img src=x onerror="alert(1)">'


def _record_hostile_run() -> None:
    from airflow_wfe.core.states import StepState
    from airflow_wfe.engine.harness import get_recorder

    recorder = get_recorder()
    recorder.run_started(OPEN_DAG, HOSTILE_RUN, actor="<b>scheduler</b>", reason=HOSTILE_REASON)
    recorder.step(OPEN_DAG, HOSTILE_RUN, HOSTILE_STEP, StepState.RUNNING, actor="worker")
    recorder.step(
        OPEN_DAG, HOSTILE_RUN, HOSTILE_STEP, StepState.FAILED, actor="worker", reason=HOSTILE_REASON
    )
    recorder.run_finished(
        OPEN_DAG, HOSTILE_RUN, succeeded=False, actor="scheduler", reason=HOSTILE_REASON
    )


class Api:
    """The in-process client, the runs made, and a token per user."""

    def __init__(self, client: Any, runs: dict[str, str], tokens: dict[str, str]) -> None:
        self.client = client
        self.runs = runs
        self.tokens = tokens

    def call(
        self, method: str, path: str, user: str | None, body: Any = None, **kwargs: Any
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if user:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        if body is not None:
            kwargs["json"] = body
        return self.client.request(method, path, headers=headers, **kwargs)

    def endpoints(self) -> list[tuple[str, str]]:
        """``(method, path template)`` of every route of the OpenAPI schema."""
        schema = self.client.get(f"{API}/openapi.json").json()
        return [
            (method.upper(), "/wfe" + path)
            for path, operations in schema["paths"].items()
            for method in operations
        ]

    def fill(self, template: str, dag_id: str) -> str:
        values = {
            "dag_id": dag_id,
            "run_id": self.runs[dag_id],
            "task_id": "no_such_gate",
            "name": "no/such/artifact",
        }
        return re.sub(r"\{(\w+)(?::path)?\}", lambda m: values[m.group(1)], template)


@pytest.fixture(scope="module")
def api(airflow_db: None, dagbag: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    store = tmp_path_factory.mktemp("api-store") / "wfe.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{store}")
        reset_runtime()
        runs = {dag_id: dagbag.get_dag(dag_id).test().run_id for dag_id in (OPEN_DAG, SECRET_DAG)}
        _record_hostile_run()
        with TestClient(create_app()) as client:
            manager: Any = get_auth_manager()
            allowed = manager.is_authorized_dag

            def is_authorized_dag(*, method: str, user: Any, **kwargs: Any) -> bool:
                if user.get_name() == "outsider":
                    details = kwargs.get("details")
                    return method == "GET" and details is not None and details.id == OPEN_DAG
                return bool(allowed(method=method, user=user, **kwargs))

            patch.setattr(manager, "is_authorized_dag", is_authorized_dag)
            tokens = {
                name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
                for name, role in [
                    ("admin", "admin"),
                    ("user", "user"),
                    ("viewer", "viewer"),
                    ("outsider", "viewer"),
                ]
            }
            yield Api(client, runs, tokens)
    reset_runtime()


def test_the_schema_lists_every_route(api: Api) -> None:
    found = set(api.endpoints())
    assert ("GET", "/wfe/api/v1/runs") in found
    assert ("GET", "/wfe/api/v1/runs/{dag_id}/{run_id}") in found
    assert ("POST", "/wfe/api/v1/runs/{dag_id}/{run_id}/gates/{task_id}/answer") in found
    assert ("GET", "/wfe/api/v1/audit/export") in found
    assert len(found) >= 15


def test_every_endpoint_answers_401_without_a_token(api: Api) -> None:
    answers = {
        (method, path): api.call(method, api.fill(path, OPEN_DAG), None, body={}).status_code
        for method, path in api.endpoints()
    }
    assert answers == dict.fromkeys(answers, 401)


def test_a_bad_token_is_refused(api: Api) -> None:
    answer = api.client.get(f"{API}/runs", headers={"Authorization": "Bearer abc.def.ghi"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "forbidden"


def test_a_viewer_reads_everything_and_acts_on_nothing(api: Api) -> None:
    for method, path in api.endpoints():
        answer = api.call(method, api.fill(path, OPEN_DAG), "viewer", body={})
        if method == "GET":
            # Unknown artifacts are 404; everything else the viewer may read.
            expected = 404 if "{name" in path else 200
            assert answer.status_code == expected, (path, answer.text)
        else:
            assert answer.status_code == 403, (method, path, answer.text)


def test_the_ui_cookie_authenticates_too(api: Api) -> None:
    answer = api.client.get(f"{API}/runs", headers={"Cookie": f"_token={api.tokens['viewer']}"})
    assert answer.status_code == 200


def test_a_user_without_the_dag_sees_none_of_it(api: Api) -> None:
    listed = api.call("GET", f"{API}/runs", "outsider").json()
    assert {run["dag_id"] for run in listed} == {OPEN_DAG}
    assert {run["dag_id"] for run in api.call("GET", f"{API}/runs", "viewer").json()} == {
        OPEN_DAG,
        SECRET_DAG,
    }
    report = api.call("GET", f"{API}/report", "outsider").json()
    assert report["dag_ids"] == [OPEN_DAG]
    assert all(
        row["dag_id"] == OPEN_DAG for row in api.call("GET", f"{API}/costs", "outsider").json()
    )
    for method, path in api.endpoints():
        if method == "GET" and ("{dag_id}" in path or path.endswith(("/audit/export", "/verify"))):
            answer = api.call(method, api.fill(path, SECRET_DAG), "outsider")
            assert answer.status_code == 403, (path, answer.text)
    for query in (
        f"runs?dag_id={SECRET_DAG}",
        f"costs?dag_id={SECRET_DAG}",
        f"report?dag_id={SECRET_DAG}",
    ):
        assert api.call("GET", f"{API}/{query}", "outsider").status_code == 403, query
    # Adding a readable dag_id to a trail-wide route does not narrow its check.
    verify = api.call("GET", f"{API}/audit/verify?dag_id={OPEN_DAG}", "outsider")
    assert verify.status_code == 403
    export = api.call("GET", f"{API}/audit/export?dag_id={OPEN_DAG}", "outsider")
    assert export.status_code == 200
    assert {json.loads(line)["dag_id"] for line in export.text.splitlines()} == {OPEN_DAG}


def test_a_user_acts(api: Api) -> None:
    checkpoint = api.call("POST", f"{API}/audit/checkpoint", "user", body={"reason": "test"})
    assert checkpoint.status_code == 200, checkpoint.text
    assert checkpoint.json()["seq"] >= 1
    # The run COMPLETED: compensating it without force is refused by the state rules, not by auth.
    run = api.runs[OPEN_DAG]
    refused = api.call("POST", f"{API}/runs/{OPEN_DAG}/{run}/compensate", "user", body={})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] in {"state_error", "illegal_transition"}
    # No such gate: Airflow's HITL API answers, in our error shape.
    gate = api.call(
        "POST",
        f"{API}/runs/{OPEN_DAG}/{run}/gates/no_such_gate/answer",
        "user",
        body={"chosen_options": ["Approve"]},
    )
    assert gate.status_code == 404, gate.text
    assert gate.json()["code"] == "not_found"


def test_actions_take_json_only(api: Api) -> None:
    answer = api.call("POST", f"{API}/audit/checkpoint", "user", content=b"reason=x")
    assert answer.status_code == 415
    form = api.call(
        "POST",
        f"{API}/audit/checkpoint",
        "user",
        content=b"reason=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert form.json()["code"] == "unsupported_media_type"


def test_an_unknown_run_is_a_404_with_its_code(api: Api) -> None:
    answer = api.call("GET", f"{API}/runs/{OPEN_DAG}/no_such_run", "viewer")
    assert answer.status_code == 404
    assert answer.json() == {
        "code": "run_not_found",
        "message": f"no governed run {OPEN_DAG}/no_such_run in the state store",
        "detail": {"dag_id": OPEN_DAG, "run_id": "no_such_run"},
    }


def test_a_bad_query_is_a_422_in_the_same_shape(api: Api) -> None:
    answer = api.call("GET", f"{API}/runs?limit=0", "viewer")
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "invalid_request"
    assert body["detail"]["errors"][0]["loc"] == ["query", "limit"]
    window = api.call("GET", f"{API}/dora?window=soon", "viewer")
    assert window.status_code == 422
    assert window.json()["message"].startswith("window:")


def test_responses_carry_a_restrictive_csp(api: Api) -> None:
    for path in (f"{API}/runs", f"{API}/runs/x/y"):
        headers = api.call("GET", path, "viewer").headers
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert headers["x-content-type-options"] == "nosniff"


def test_a_run_is_the_json_wfe_runs_show_prints(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_wfe.cli.main import main

    for dag_id, run_id in api.runs.items():
        answer = api.call("GET", f"{API}/runs/{dag_id}/{run_id}", "viewer")
        assert answer.status_code == 200
        capsys.readouterr()
        assert main(["runs", "show", dag_id, run_id, "--json"]) == 0
        assert answer.json() == json.loads(capsys.readouterr().out)
    saga = api.call("GET", f"{API}/runs/{SECRET_DAG}/{api.runs[SECRET_DAG]}", "admin").json()
    assert saga["compensations"], "the saga example compensates"


def test_the_list_is_the_json_wfe_runs_list_prints(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_wfe.cli.main import main

    answer = api.call("GET", f"{API}/runs?limit=1", "viewer")
    capsys.readouterr()
    assert main(["runs", "list", "--limit", "1", "--json"]) == 0
    assert answer.json() == json.loads(capsys.readouterr().out)
    assert 'rel="next"' in answer.headers["link"]
    second = api.call("GET", f"{API}/runs?limit=1&offset=1", "viewer").json()
    assert second[0]["run_id"] != answer.json()[0]["run_id"]


def test_the_export_streams_jsonl_and_csv(api: Api) -> None:
    jsonl = api.call("GET", f"{API}/audit/export", "viewer")
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    events = [json.loads(line) for line in jsonl.text.splitlines()]
    assert {e["dag_id"] for e in events if e.get("dag_id")} >= {OPEN_DAG, SECRET_DAG}
    csv = api.call("GET", f"{API}/audit/export?format=csv&dag_id={OPEN_DAG}", "viewer")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("seq,")
    assert "attachment" in csv.headers["content-disposition"]


def test_audit_verify_says_ok(api: Api) -> None:
    body = api.call("GET", f"{API}/audit/verify", "viewer").json()
    assert body["ok"] is True, body


# -- the pages (/wfe/ui) --------------------------------------------------------------------


def test_pages_need_a_login_and_the_dag(api: Api) -> None:
    run = api.runs[OPEN_DAG]
    assert api.call("GET", "/wfe/ui/", None).status_code == 401
    assert api.call("GET", f"/wfe/ui/runs/{OPEN_DAG}/{run}", None).status_code == 401
    secret = api.call("GET", f"/wfe/ui/runs/{SECRET_DAG}/{api.runs[SECRET_DAG]}", "outsider")
    assert secret.status_code == 403
    assert "text/html" in secret.headers["content-type"]
    overview = api.call("GET", "/wfe/ui/", "outsider")
    assert overview.status_code == 200
    assert SECRET_DAG not in overview.text
    assert OPEN_DAG in overview.text


def test_the_overview_and_a_run_page_through_the_ui_cookie(api: Api) -> None:
    cookie = {"Cookie": f"_token={api.tokens['viewer']}"}
    overview = api.client.get("/wfe/ui/", headers=cookie)
    assert overview.status_code == 200, overview.text
    assert "Governed runs" in overview.text
    assert "'unsafe-inline'" not in overview.headers["content-security-policy"]
    run = api.runs[SECRET_DAG]
    page = api.client.get(f"/wfe/ui/runs/{SECRET_DAG}/{run}", headers=cookie)
    assert page.status_code == 200, page.text
    for section in ("State machine", "Timeline", "Compensations", "Audit events"):
        assert section in page.text
    # The path taken is highlighted: the saga ends COMPENSATED through FAILED and COMPENSATING.
    assert 'class="node state-compensated visited current terminal"' in page.text
    assert 'class="edge taken"' in page.text
    assert api.client.get("/wfe/ui/static/wfe.css").status_code == 200


def test_markup_in_ids_and_reasons_is_shown_as_text(api: Api) -> None:
    from urllib.parse import quote

    page = api.call("GET", f"/wfe/ui/runs/{OPEN_DAG}/{quote(HOSTILE_RUN, safe='')}", "viewer")
    assert page.status_code == 200, page.text
    for markup in (HOSTILE_RUN, HOSTILE_STEP, HOSTILE_REASON, "<b>scheduler</b>"):
        assert markup not in page.text
    assert "&lt;script&gt;alert(&#39;step&#39;)&lt;/script&gt;" in page.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text
    overview = api.call("GET", "/wfe/ui/", "viewer").text
    assert HOSTILE_RUN not in overview
    assert quote(HOSTILE_RUN, safe="") in overview  # the link to it, encoded
