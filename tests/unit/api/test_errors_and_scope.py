"""The API's error shape, its security headers and the DAG scope of lists, on a bare FastAPI app."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException  # noqa: TID253 - a test of the web layer
from fastapi.testclient import TestClient  # noqa: TID253 - a test of the web layer

from airflow_wfe.api.errors import install_error_handlers
from airflow_wfe.api.headers import API_CSP, DOCS_CSP, PAGE_CSP, SecurityHeaders
from airflow_wfe.api.security import DagScope
from airflow_wfe.exceptions import ConfigError, IllegalTransitionError, RunNotFoundError


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)

    @app.get("/missing")
    def missing() -> Any:
        raise RunNotFoundError("deploy", "manual__1")

    @app.get("/illegal")
    def illegal() -> Any:
        raise IllegalTransitionError("run", "deploy/r", "RUNNING", "COMPENSATED", ["COMPLETED"])

    @app.get("/config")
    def config() -> Any:
        raise ConfigError("store_conn", "postgresql://***@db/wfe", "cannot connect")

    @app.get("/forbidden")
    def forbidden() -> Any:
        raise HTTPException(403, "Forbidden")

    @app.get("/typed")
    def typed(limit: int) -> Any:
        return limit

    @app.get("/ui/page")
    def page() -> Any:
        return "page"

    @app.get("/docs")
    def docs() -> Any:
        return "docs"

    return TestClient(app, raise_server_exceptions=False)


def test_a_wfe_error_is_its_code_status_message_and_context(client: TestClient) -> None:
    answer = client.get("/missing")
    assert answer.status_code == 404
    assert answer.json() == {
        "code": "run_not_found",
        "message": "no governed run deploy/manual__1 in the state store",
        "detail": {"dag_id": "deploy", "run_id": "manual__1"},
    }
    illegal = client.get("/illegal").json()
    assert illegal["code"] == "illegal_transition"
    assert illegal["detail"]["allowed"] == ["COMPLETED"]


def test_a_server_side_error_keeps_its_context_out_of_the_answer(client: TestClient) -> None:
    answer = client.get("/config")
    assert answer.status_code == 500
    assert answer.json()["code"] == "config_error"
    assert answer.json()["detail"] == {}


def test_http_and_validation_errors_take_the_same_shape(client: TestClient) -> None:
    assert client.get("/forbidden").json() == {
        "code": "forbidden",
        "message": "Forbidden",
        "detail": {},
    }
    invalid = client.get("/typed?limit=x")
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "invalid_request"
    assert invalid.json()["message"].startswith("query.limit:")


def test_every_answer_has_a_csp_for_what_it_is(client: TestClient) -> None:
    assert client.get("/missing").headers["content-security-policy"] == API_CSP
    assert client.get("/ui/page").headers["content-security-policy"] == PAGE_CSP
    assert client.get("/docs").headers["content-security-policy"] == DOCS_CSP
    assert "frame-ancestors 'self'" in API_CSP
    assert "'unsafe-inline'" not in PAGE_CSP


def test_a_scope_of_every_dag_allows_all_and_asks_for_all() -> None:
    scope = DagScope(None)
    assert scope.everything
    assert scope.allows("anything")
    assert scope.allows(None)
    assert scope.narrow([]) is None
    assert scope.narrow(["b", "a", "b"]) == ["a", "b"]


def test_a_partial_scope_hides_other_dags_and_never_asks_for_all() -> None:
    scope = DagScope(frozenset({"a", "b"}))
    assert not scope.everything
    assert scope.allows("a")
    assert not scope.allows("c")
    assert not scope.allows(None)
    assert scope.narrow([]) == ["a", "b"]
    assert scope.narrow(["a", "c"]) == ["a"]
    with pytest.raises(HTTPException) as refused:
        scope.narrow(["c"])
    assert refused.value.status_code == 403
    with pytest.raises(HTTPException):
        DagScope(frozenset()).narrow([])
