"""Conditional GET: an ETag from the body, 304 when the client already has it.

A dashboard polling the provider list every few seconds mostly asks for what
it has; the body is still built (that is what tells it changed), but nothing
is sent and nothing is parsed on its side.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response


def etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def cached_json(request: Request, body: bytes, *, cache_control: str = "no-cache") -> Response:
    """`body` (JSON) with its ETag, or 304 if If-None-Match names that ETag.

    no-cache by default: a client may keep it but must ask again (and gets a 304).
    """
    return conditional(request, body, "application/json",
                       {"Cache-Control": cache_control})


def conditional(request: Request, body: bytes, media_type: str,
                headers: dict[str, str]) -> Response:
    """`body` with `headers` and its ETag, or 304 (same headers) if If-None-Match has it."""
    headers = {"ETag": etag(body), **headers}
    if _matches(request.headers.get("if-none-match", ""), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _matches(header: str, tag: str) -> bool:
    """RFC 9110 §13.1.2: `*`, or any listed tag, weak comparison (W/ ignored)."""
    if header.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == tag for candidate in header.split(","))
