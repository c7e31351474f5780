"""The pages' CSRF guard: a same-origin form with this session's token passes, nothing else does."""

from __future__ import annotations

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from airflow_wfe.ui import csrf


def _request(cookie: str | None = None, bearer: str | None = None, **headers: str) -> Request:
    raw = [(b"host", b"airflow.example:8080")]
    if cookie:
        raw.append((b"cookie", f"_token={cookie}".encode()))
    if bearer:
        raw.append((b"authorization", f"Bearer {bearer}".encode()))
    raw += [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw})


def test_the_token_belongs_to_the_session() -> None:
    mine = csrf.token_for(_request(cookie="jwt-a"))
    assert len(mine) == 64
    assert mine == csrf.token_for(_request(cookie="jwt-a"))
    assert mine == csrf.token_for(_request(bearer="jwt-a"))
    assert mine != csrf.token_for(_request(cookie="jwt-b"))
    assert csrf.token_for(_request()) == ""


def test_a_same_origin_form_with_the_token_passes() -> None:
    token = csrf.token_for(_request(cookie="jwt-a"))
    csrf.check(_request(cookie="jwt-a"), token)
    csrf.check(
        _request(
            cookie="jwt-a", sec_fetch_site="same-origin", origin="https://airflow.example:8080"
        ),
        token,
    )


@pytest.mark.parametrize(
    ("headers", "submitted", "why"),
    [
        ({}, "", "token"),
        ({}, "0" * 64, "token"),
        ({"sec_fetch_site": "cross-site"}, None, "another site"),
        ({"sec_fetch_site": "same-site"}, None, "another site"),
        ({"origin": "https://evil.example"}, None, "another origin"),
        ({"origin": "null"}, None, "another origin"),
    ],
)
def test_anything_else_is_refused(headers: dict[str, str], submitted: str | None, why: str) -> None:
    token = csrf.token_for(_request(cookie="jwt-a"))
    with pytest.raises(HTTPException) as caught:
        csrf.check(_request(cookie="jwt-a", **headers), token if submitted is None else submitted)
    assert caught.value.status_code == 403
    assert why in str(caught.value.detail)


def test_without_a_credential_nothing_passes() -> None:
    with pytest.raises(HTTPException):
        csrf.check(_request(), "")
