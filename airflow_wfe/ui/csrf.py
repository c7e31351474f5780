"""CSRF protection of the pages' forms: a same-origin check and a per-session token.

The pages authenticate by Airflow's ``_token`` cookie, which a browser attaches to a form another
site posts here (``SameSite=Lax`` drops it on cross-site POSTs in today's browsers; these checks
hold without relying on that). A form POST is accepted only when

* the browser says it came from this origin: ``Sec-Fetch-Site``, when sent, is ``same-origin``, and
  ``Origin``, when sent, names this host; and
* it carries the token this module derived from the caller's own credential (the JWT of the cookie
  or of the ``Authorization`` header): an HMAC of a fixed label keyed by that JWT. Another site can
  read neither the cookie nor the page, so it cannot produce the token; the token needs no server
  secret and no state, so every API-server worker accepts it, and it changes with the session.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["FIELD", "check", "token_for"]

#: The form field holding the token.
FIELD: Final = "csrf_token"
_COOKIE: Final = "_token"  # Airflow's COOKIE_NAME_JWT_TOKEN
_LABEL: Final = b"airflow-wfe page form v1"


def _credential(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value
    return request.cookies.get(_COOKIE, "")


def token_for(request: Request) -> str:
    """The token the caller's forms carry (empty without a credential: no form is then shown)."""
    credential = _credential(request)
    if not credential:
        return ""
    return hmac.new(credential.encode(), _LABEL, hashlib.sha256).hexdigest()


def check(request: Request, submitted: str) -> None:
    """Refuse a form POST that is cross-site or lacks this session's token.

    Raises:
        HTTPException: 403 naming what failed.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise HTTPException(403, f"Forbidden: a form posted from another site ({site})")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "Forbidden: a form posted from another origin")
    expected = token_for(request)
    if not expected or not hmac.compare_digest(expected, submitted):
        raise HTTPException(
            403, "Forbidden: the form's token is not this session's; reload the page and retry"
        )
