"""Security headers on every response of the sub-app: a restrictive Content-Security-Policy.

Airflow's API server sets none on plugin routes. JSON needs no resources at all; the pages load
only their own stylesheet and inline SVG; only the OpenAPI docs page pulls Swagger UI from the CDN
FastAPI points it at (and runs its one inline bootstrap script), so it gets a policy of its own.
Framing is limited to the same origin: the Airflow UI shows the pages in a same-origin iframe.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from airflow_wfe.api.lazy import ASGIApp, Receive, Scope, Send

__all__ = ["API_CSP", "DOCS_CSP", "PAGE_CSP", "SecurityHeaders"]

API_CSP: Final = "default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
PAGE_CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
DOCS_CSP: Final = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; "
    "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def _policy(path: str) -> str:
    if path.endswith("/docs"):
        return DOCS_CSP
    if "/ui" in path:
        return PAGE_CSP
    return API_CSP


class SecurityHeaders:
    """Pure ASGI middleware (no buffering, so streamed exports stay streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _policy(str(scope.get("path", ""))).encode()

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in _COMMON if n not in names]
                headers.append((b"content-security-policy", csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
