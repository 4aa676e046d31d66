"""Who may see the status page and the badges: `settings.status_page`.

    public  anyone who reaches the port
    token   a read or admin API token (the API's own, monitor.api.auth), presented
            as `Authorization: Bearer` (curl, a dashboard) or as the cookie the
            page's sign-in form sets (a browser)
    off     the routes are not served at all

The cookie holds the token itself, HttpOnly and SameSite=Strict, so no script and
no other site can read or send it; Secure whenever the page is served over https.
"""

from __future__ import annotations

from starlette.requests import Request

from monitor.api.auth import Scope, Tokens
from monitor.config import StatusPageAccess

COOKIE = "monitor_status_token"


def presented_token(request: Request) -> str | None:
    kind, _, value = request.headers.get("authorization", "").partition(" ")
    if kind.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE) or None


def allowed(request: Request, access: StatusPageAccess, tokens: Tokens) -> bool:
    """May this request see the page? (`off` never reaches here: nothing is routed.)"""
    if access is StatusPageAccess.PUBLIC:
        return True
    token = presented_token(request)
    return token is not None and tokens.scope_of(token) in (Scope.READ, Scope.ADMIN)


def valid(token: str, tokens: Tokens) -> bool:
    return tokens.scope_of(token) is not None


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a path on this site only, never `//elsewhere`."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
