"""API errors: one JSON shape, `{"error": {"code", "message", "details"}}`, fitting 4xx.

Handlers raise ApiError; Starlette's own HTTP errors (404 for an unknown path,
405 for a wrong method) and anything unexpected are rendered in the same shape,
and an unexpected exception never leaks its text (it may hold a secret).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("monitor.api")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large",
          415: "unsupported_media_type", 422: "invalid", 429: "rate_limited",
          500: "internal", 503: "unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}},
                        status_code=status, headers=headers)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Where and what, without echoing input values (they may be secrets)."""
    return [{"field": ".".join(str(p) for p in e["loc"]) or None,
             "problem": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors(include_url=False)]


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "no such route", 405: "method not allowed for this route"}.get(
        exc.status_code, str(exc.detail))
    return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), message,
                          headers=dict(exc.headers) if exc.headers else None)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled API error", extra={"action": "api_error",
                                                "path": request.url.path})
    return error_response(500, "internal", "internal error; see the service log")


EXCEPTION_HANDLERS = {ApiError: api_error_handler, HTTPException: http_error_handler,
                      Exception: unexpected_error_handler}
