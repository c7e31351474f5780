"""One JSON shape for every error the API returns, whoever raised it.

``{"code": "run_not_found", "message": "...", "detail": {...}}`` with the HTTP status the exception
declares: :class:`~airflow_wfe.exceptions.WfeError` subclasses carry a stable ``code`` and an
``http_status`` (their context attributes become ``detail``); FastAPI's and Airflow's own
``HTTPException`` (401 not authenticated, 403 forbidden, ...) and request validation errors are
put in the same shape, so a client parses one format. Routes never catch errors themselves.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request  # noqa: TID253 - loaded only by the lazily built API app
from fastapi.encoders import jsonable_encoder  # noqa: TID253 - loaded only by the lazily built API app
from fastapi.exceptions import RequestValidationError  # noqa: TID253 - loaded only by the lazily built API app
from fastapi.responses import JSONResponse  # noqa: TID253 - loaded only by the lazily built API app
from starlette.exceptions import HTTPException

from airflow_wfe.exceptions import WfeError

__all__ = ["ErrorBody", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

#: The stable ``code`` of errors raised by FastAPI or Airflow rather than by airflow-wfe.
_HTTP_CODES = {
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid_request",
}

ErrorBody = dict[str, Any]


def error_response(
    status: int, code: str, message: str, detail: dict[str, Any] | None = None, **kwargs: Any
) -> JSONResponse:
    """The error JSON with ``status`` (``kwargs`` go to :class:`JSONResponse`, e.g. headers)."""
    body = {"code": code, "message": message, "detail": jsonable_encoder(detail or {})}
    return JSONResponse(body, status_code=status, **kwargs)


def _context(exc: WfeError) -> dict[str, Any]:
    """The exception's public context attributes (dag_id, run_id, from_state, ...)."""
    return {key: value for key, value in vars(exc).items() if not key.startswith("_")}


async def _wfe_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WfeError)
    status = int(getattr(exc, "http_status", HTTPStatus.INTERNAL_SERVER_ERROR))
    code = str(getattr(exc, "code", "error"))
    if status >= 500:
        # A server-side failure (store down, bad config): the log gets the traceback, the client
        # the message, not the context (it may name hosts or files).
        log.error(
            "airflow-wfe API: %s %s failed: %s", request.method, request.url.path, exc, exc_info=exc
        )
        return error_response(status, code, str(exc))
    return error_response(status, code, str(exc), _context(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    detail = None if isinstance(exc.detail, str) else {"detail": exc.detail}
    return error_response(exc.status_code, code, message, detail, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", {"errors": errors})


def install_error_handlers(app: FastAPI) -> None:
    """Route every error raised below ``app`` through the one JSON shape."""
    app.add_exception_handler(WfeError, _wfe_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
