"""What every page module shares: the templates, the page renderer, the forms, and rights checks.

The pages' routes live in one module per subject (runs in :mod:`airflow_wfe.ui.app`, the audit
trail, policies, artifacts beside it); each renders through :class:`Pages` so every page gets the
same links and the same signed-in user line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, quote_plus

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from fastapi import Request  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.responses import HTMLResponse, RedirectResponse  # noqa: TID253 - loaded only by the lazily built pages app
from jinja2 import Environment, PackageLoader, StrictUndefined  # noqa: TID253 - loaded only by the lazily built pages app
from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod

__all__ = [
    "FORM_MAX_BYTES",
    "Pages",
    "may",
    "read_form",
    "read_form_pairs",
    "redirect",
    "templates",
]

#: The most a page's form may send (an answer, a reason, a dry run's facts).
FORM_MAX_BYTES: Final = 16_384


def templates() -> Environment:
    """The pages' templates: autoescaped, strict about undefined names."""
    env = Environment(
        loader=PackageLoader("airflow_wfe.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # A path segment (``/`` too is encoded: run ids may hold anything) and a query value.
    env.filters["path"] = lambda value: quote(str(value), safe="")
    env.filters["query"] = lambda value: quote_plus(str(value))
    return env


class Pages:
    """Renders a template with what every page needs (links, who is signed in)."""

    def __init__(self) -> None:
        self.env = templates()

    def render(
        self, request: Request, name: str, user: str, http_status: int = 200, **values: Any
    ) -> HTMLResponse:
        base = base_path(request)
        api = base.rsplit("/ui", 1)[0] + "/api/v1"
        html = self.env.get_template(name).render(base=base, api=api, user=user, **values)
        return HTMLResponse(html, status_code=http_status)


def base_path(request: Request) -> str:
    """Where the pages are mounted (``/wfe/ui``, behind ``[api] base_url``'s path)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def redirect(request: Request, path: str, query: str = "") -> RedirectResponse:
    """A 303 to another page after a form (so a reload does not post it again)."""
    target = base_path(request) + path + (f"?{query}" if query else "")
    return RedirectResponse(target, status_code=303)


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form, one value per field (see :func:`read_form_pairs`)."""
    return dict(await read_form_pairs(request))


async def read_form_pairs(request: Request) -> list[tuple[str, str]]:
    """A small urlencoded form as sent, repeated fields (checkboxes) included; no multipart:
    the pages' forms send none."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "The page's forms post application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        raise HTTPException(413, f"A form of at most {FORM_MAX_BYTES} bytes")
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def may(user: Any, dag_id: str, method: ResourceMethod, entity: DagAccessEntity) -> bool:
    """Whether ``user`` has this right on ``dag_id``."""
    return bool(
        get_auth_manager().is_authorized_dag(
            method=method, access_entity=entity, details=DagDetails(id=dag_id), user=user
        )
    )
