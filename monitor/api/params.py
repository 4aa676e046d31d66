"""Reading requests: query parameters, cursors and JSON bodies, with 4xx on bad input."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from monitor.api.errors import ApiError, validation_details

log = logging.getLogger("monitor.api")

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 1_000_000


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", details={"parameter": name}) from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}",
                       details={"parameter": name})
    return value


def time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an RFC 3339 time",
                       details={"parameter": name}) from None
    if value.tzinfo is None:
        raise ApiError(400, f"{name} needs a UTC offset (e.g. Z)", details={"parameter": name})
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise ApiError(400, f"{name} is out of range", details={"parameter": name}) from None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def cursor_param(request: Request) -> str | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid cursor", details={"parameter": "cursor"}) from None
    if not value.isalnum() or len(value) > 32:
        raise ApiError(400, "invalid cursor", details={"parameter": "cursor"})
    return value


async def read_body(request: Request, model: type[M]) -> M:
    if "json" not in request.headers.get("content-type", "application/json"):
        raise ApiError(415, "send application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"request body over {MAX_BODY} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:  # chunked bodies have no length to check up front
                raise ApiError(413, f"request body over {MAX_BODY} bytes")
    except ClientDisconnect:
        # The client went away mid-body: nothing failed here and nobody reads the answer.
        log.debug("client disconnected before the end of the body",
                  extra={"action": "client_disconnected", "path": request.url.path,
                         "bytes": len(body)})
        raise ApiError(400, "the client disconnected before the end of the body",
                       code="client_disconnected") from None
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    except ValueError:
        # int() refuses numbers over sys.get_int_max_str_digits() (4300) digits, CVE-2020-10735.
        raise ApiError(400, "request body has a number with too many digits") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "request body is invalid",
                       details=validation_details(exc)) from None
