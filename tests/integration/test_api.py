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
from urllib.parse import quote

import pytest
from app_users import users_with_an_outsider

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
    from fastapi.testclient import TestClient

    store = tmp_path_factory.mktemp("api-store") / "wfe.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{store}")
        reset_runtime()
        runs = {dag_id: dagbag.get_dag(dag_id).test().run_id for dag_id in (OPEN_DAG, SECRET_DAG)}
        _record_hostile_run()
        with TestClient(create_app()) as client:
            manager: Any = get_auth_manager()
            tokens = users_with_an_outsider(patch, manager, OPEN_DAG)
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
    cursor = answer.headers["x-next-cursor"]
    assert answer.headers["link"] == (
        f'<http://testserver{API}/runs?limit=1&cursor={cursor}>; rel="next"'
    )
    second = api.call("GET", f"{API}/runs?limit=1&cursor={cursor}", "viewer").json()
    assert second[0]["run_id"] != answer.json()[0]["run_id"]


def _pages(api: Api, user: str, query: str) -> list[list[dict[str, Any]]]:
    """Every page of ``GET /runs?query`` as ``user``, following the Link header."""
    pages, url = [], f"{API}/runs?{query}"
    while url:
        answer = api.call("GET", url, user)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        link = answer.headers.get("link")
        url = link[link.index("/wfe") : link.index(">")] if link else ""
    return pages


def test_cursor_pages_hold_only_the_readable_runs(api: Api) -> None:
    everything = [r for page in _pages(api, "viewer", "limit=1") for r in page]
    assert len(everything) == len({(r["dag_id"], r["run_id"]) for r in everything}) == 3
    assert [r["created_at"] for r in everything] == sorted(
        (r["created_at"] for r in everything), reverse=True
    )
    # The outsider's pages are full pages of the DAG it may read (filtered in SQL, not after).
    pages = _pages(api, "outsider", "limit=1")
    assert [len(page) for page in pages] == [1, 1]
    assert {r["dag_id"] for page in pages for r in page} == {OPEN_DAG}
    assert [r for r in everything if r["dag_id"] == OPEN_DAG] == [r for p in pages for r in p]
    # Filters: DAG (repeatable), state, time window.
    both = _pages(api, "viewer", f"dag_id={OPEN_DAG}&dag_id={SECRET_DAG}&limit=10")
    assert both == [everything]
    failed = api.call("GET", f"{API}/runs?state=failed", "viewer").json()
    assert {r["run_id"] for r in failed} == {
        r["run_id"] for r in everything if r["state"] == "FAILED"
    }
    newest = everything[0]["created_at"]
    assert api.call("GET", f"{API}/runs?since={quote(newest)}", "viewer").json() == everything[:1]
    older = api.call("GET", f"{API}/runs?until={quote(newest)}", "viewer").json()
    assert older == everything[1:]


def test_bad_list_requests_say_which_parameter(api: Api) -> None:
    mixed = api.call("GET", f"{API}/runs?dag_id={OPEN_DAG}&dag_id={SECRET_DAG}", "outsider")
    assert mixed.status_code == 403, mixed.text
    cursor = api.call("GET", f"{API}/runs?cursor=not-ours", "viewer")
    assert cursor.status_code == 400
    assert cursor.json()["code"] == "usage_error"
    assert cursor.json()["detail"]["argument"] == "cursor"
    window = api.call(
        "GET", f"{API}/runs?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "viewer"
    )
    assert (window.status_code, window.json()["detail"]["argument"]) == (400, "since")
    assert api.call("GET", f"{API}/runs?limit=1001", "viewer").status_code == 422
    assert api.call("GET", f"{API}/runs?since=yesterday", "viewer").status_code == 422


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


def test_the_runs_page_filters_and_pages_within_the_readable_dags(api: Api) -> None:
    import html

    page = api.call("GET", "/wfe/ui/runs?limit=1", "outsider")
    assert page.status_code == 200, page.text
    assert SECRET_DAG not in page.text
    assert "2 runs match" in page.text
    following = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert following is not None
    second = api.call("GET", html.unescape(following.group(1)), "outsider")
    assert second.status_code == 200, second.text
    assert SECRET_DAG not in second.text
    assert 'rel="next"' not in second.text  # the outsider's last page
    hidden = api.call("GET", f"/wfe/ui/runs?dag_id={SECRET_DAG}", "outsider")
    assert hidden.status_code == 403
    mine = api.call("GET", f"/wfe/ui/runs?dag_id={SECRET_DAG}&state=compensated", "viewer")
    assert "1 run matches" in mine.text
    assert api.runs[SECRET_DAG] in mine.text
    blank = api.call("GET", "/wfe/ui/runs?since=&until=&state=&dag_id=", "viewer")
    assert "3 runs match" in blank.text
    bad = api.call("GET", "/wfe/ui/runs?since=yesterday", "viewer")
    assert bad.status_code == 400
    assert "since: &#39;yesterday&#39; is not a time" in bad.text


def _form_token(api: Api, user: str) -> str:
    from starlette.requests import Request

    from airflow_wfe.ui import csrf

    header = (b"authorization", f"Bearer {api.tokens[user]}".encode())
    return csrf.token_for(Request({"type": "http", "headers": [header]}))


def test_the_gate_form_is_csrf_safe_and_goes_to_airflow(api: Api) -> None:
    run = api.runs[OPEN_DAG]
    path = f"/wfe/ui/runs/{OPEN_DAG}/{run}/gates/no_such_gate/answer"
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(user: str, body: str, **headers: str) -> Any:
        return api.call("POST", path, user, content=body.encode(), headers={**form, **headers})

    token = _form_token(api, "user")
    good = f"csrf_token={token}&choice=Approve&comment=fine"
    assert post("user", "choice=Approve").status_code == 403
    assert post("user", f"csrf_token={_form_token(api, 'admin')}&choice=Approve").status_code == 403
    assert post("user", good, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert post("user", good, Origin="https://evil.example").status_code == 403
    json_post = api.call("POST", path, "user", body={"csrf_token": token, "choice": "Approve"})
    assert json_post.status_code == 415
    viewer = post("viewer", f"csrf_token={_form_token(api, 'viewer')}&choice=Approve")
    assert viewer.status_code == 403  # edit rights on the DAG's runs are checked first
    # Past every check the answer reaches Airflow's HITL API, which knows no such gate.
    through = post("user", good, **{"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"})
    assert through.status_code == 404, through.text
    assert "text/html" in through.headers["content-type"]
    assert "no_such_gate" in through.text or "not found" in through.text.lower()


def test_a_finished_run_page_offers_no_gate_and_stops_watching(api: Api) -> None:
    done = api.call("GET", f"/wfe/ui/runs/{OPEN_DAG}/{api.runs[OPEN_DAG]}", "user")
    assert done.status_code == 200
    assert "Waiting for approval" not in done.text
    assert "data-watch" not in done.text
    assert api.client.get("/wfe/ui/static/live.js").status_code == 200


def test_every_endpoint_hides_a_dag_from_a_user_without_it(api: Api) -> None:
    """Generated from the schema: for the outsider (no right on SECRET_DAG) a route naming the DAG
    is 403, and a route listing many DAGs answers without a trace of it; acting is 403 anywhere."""
    checked = {}
    for method, path in api.endpoints():
        filled = api.fill(path, SECRET_DAG)
        answer = api.call(method, filled, "outsider", body={})
        if method != "GET" or "{dag_id}" in path:
            assert answer.status_code == 403, (method, path, answer.text)
        elif "/artifacts" in path or path.endswith(("/audit/export", "/audit/verify")):
            # An artifact serves every DAG, the trail holds every DAG: rights on every DAG.
            assert answer.status_code == 403, (path, answer.text)
        else:
            assert answer.status_code == 200, (path, answer.text)
            assert SECRET_DAG not in answer.text, (path, answer.text)
        checked[(method, path)] = answer.status_code
    assert len(checked) >= 15


def test_every_page_needs_a_login(api: Api) -> None:
    """The pages have no OpenAPI schema: their routes are read from the app itself, so a new page
    cannot skip Airflow's authentication either."""
    from fastapi.routing import APIRoute

    from airflow_wfe.ui.app import build_app

    routes = [r for r in build_app().routes if isinstance(r, APIRoute)]
    assert len(routes) >= 10
    for route in routes:
        for method in route.methods:
            filled = api.fill(route.path, OPEN_DAG)
            answer = api.call(method, f"/wfe/ui{filled}", None)
            assert answer.status_code == 401, (method, route.path, answer.status_code)
            secret = api.call(method, f"/wfe/ui{api.fill(route.path, SECRET_DAG)}", "outsider")
            every_dag = route.path.startswith(("/artifacts", "/policies", "/audit/checkpoint"))
            if "{dag_id}" in route.path or every_dag:
                # Artifacts and policies serve every DAG, a checkpoint vouches for all of them.
                assert secret.status_code == 403, (method, route.path, secret.text)
            else:
                assert secret.status_code == 200, (method, route.path, secret.text)
                assert SECRET_DAG not in secret.text
