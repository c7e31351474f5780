"""REST requests fuzzed from the API's own OpenAPI schema (issue #22), with schemathesis.

Every operation of ``/wfe/api/v1`` gets requests generated from its schema (valid and invalid path
parameters, query strings and bodies), sent through Airflow's own API app with a token of a user
drawn at random (admin, viewer, a viewer of one DAG only, or no token at all). Whatever is asked:

* never a server error (5xx) and never a traceback in the body;
* every error is the API's one JSON shape (``code``, ``message``, ``detail``), or Airflow's own
  404 for a path no route takes, with a status the request explains: 401 without a token, 403 or 404 for what the user may not see, 4xx for bad input;
* a user who may not read a DAG never gets a successful answer that names it.

The schema is read from the running app, so an endpoint added later is fuzzed without a change here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")

import test_api  # noqa: E402
from test_api import API, SECRET_DAG, Api  # noqa: E402

#: test_api's module-scoped app (its runs, users and tokens), registered here as ``api_app``.
api_app = test_api.api

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = [None, "admin", "viewer", "outsider"]


@pytest.fixture(scope="module")
def operations(api_app: Api) -> list[Any]:
    schema = api_app.client.get(f"{API}/openapi.json").json()
    loaded = schemathesis.openapi.from_dict(schema)
    found = [result.ok() for result in loaded.get_all_operations()]
    assert len(found) >= 10, "the API's schema lists its operations"
    return found


def _send(api: Api, case: Any, user: str | None) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver/wfe")
    headers = {
        k: v
        for k, v in (kwargs.get("headers") or {}).items()
        if k.lower() not in {"authorization", "cookie"}
    }
    if user:
        headers["Authorization"] = f"Bearer {api.tokens[user]}"
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params"),
        "headers": headers,
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif "data" in kwargs:
        request["content"] = kwargs["data"]
    return api.client.request(**request)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_get_a_clear_answer(
    api_app: Api, operations: list[Any], data: st.DataObject
) -> None:
    operation = data.draw(st.sampled_from(operations), label="operation")
    case = data.draw(operation.as_strategy(), label="case")
    user = data.draw(st.sampled_from(USERS), label="user")
    response = _send(api_app, case, user)
    status = response.status_code
    event(f"{status // 100}xx")
    where = f"{case.method} {case.formatted_path} as {user}: {status} {response.text[:300]}"
    assert status < 500, where
    assert "Traceback" not in response.text, where
    if user is None and status not in (404, 405):
        assert status == 401, where
    if status >= 400:
        body = response.json()
        if body == {"detail": "Not Found"}:
            # A path no route of Airflow's app matches (``/wfe`` is a Mount whose pattern does not
            # take a newline, for one): Airflow's own 404, before the request reaches the API.
            assert status == 404, where
            return
        assert set(body) >= {"code", "message", "detail"}, where
        assert isinstance(body["code"], str), where
        assert body["code"], where
    elif user == "outsider" and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        # The outsider may read the open DAG only: nothing of the other one, anywhere.
        assert SECRET_DAG not in json.dumps(response.json()), where
