"""HTTP intake for the inbound kind: `POST /inbound/{mailbox}`.

It accepts

* the raw message, `Content-Type: message/rfc822`;
* `multipart/form-data` (or url-encoded) with the raw message in a field named
  `email` — SendGrid Inbound Parse with "POST the raw, full MIME message" — or
  `body-mime` — a Mailgun route forwarding to a URL ending in "mime".

Authentication: the mailbox's `token`, as `Authorization: Bearer <token>` or
`?token=<token>` (ESP webhooks cannot set headers; keep access logs free of
query strings). Responses: 200 stored; 401 no inbound mailbox by that name,
or a bad or missing token — one answer for both, so names cannot be probed for;
413 body over `max_bytes`; 415 another content type; 422 no message, or a
message without the probe token header (or a token longer than any we send);
400 a malformed form; 503 the store is unreachable (the ESP retries). Errors are
`{"error": {"code", "message", "details"}}`. Nothing is stored unless the
answer is 200. Messages go to an `InboundStore` (monitor.receive.inbound).

Its own module so that what only reads mailboxes (`monitor probe`) does not load
starlette and the multipart parser. Forms are parsed in a worker thread: a 10 MB
body takes long enough in pure Python to stall every other request and timer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.config import Config
from monitor.receive.backend import parse_headers, token_of
from monitor.receive.errors import ReceiveError
from monitor.receive.inbound import InboundMailbox, InboundStore
from monitor.receive.maildir import deliver, inbound_dir
from monitor.results import TOKEN_HEADER

log = logging.getLogger("monitor.inbound")

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MESSAGE_FIELDS = (b"email", b"body-mime")  # SendGrid Inbound Parse, Mailgun routes
MAX_TOKEN_CHARS = 64  # ours are 27 (dm- and 24 hex digits); the token columns hold 64
RETRY_AFTER_SECONDS = 30  # asked of the ESP when the store is away
# Compared against when the mailbox does not exist, so that case costs the same work.
_DECOY_DIGEST = hashlib.sha256(secrets.token_bytes(32)).digest()


class _TooLarge(Exception):
    pass


class _BadForm(Exception):
    pass


def inbound_routes(config: Config, data_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                   store: InboundStore | None = None) -> list[Route]:
    """Routes for the service to include as they are (path `/inbound/{mailbox}`);
    messages go to `store`, or without one to a Maildir under `data_dir`."""
    endpoint = _Inbound(config, data_dir, max_bytes, store)
    return [Route("/inbound/{mailbox}", endpoint.post, methods=["POST"])]


def inbound_app(config: Config, data_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                store: InboundStore | None = None) -> Starlette:
    return Starlette(routes=inbound_routes(config, data_dir, max_bytes=max_bytes, store=store))


@dataclass(frozen=True)
class _Inbound:
    config: Config
    data_dir: Path
    max_bytes: int
    store: InboundStore | None = None

    async def post(self, request: Request) -> Response:
        found = self.config.mailbox(request.path_params["mailbox"])
        mailbox = found if isinstance(found, InboundMailbox) else None
        if not _authorized(request, mailbox) or mailbox is None:
            return _error(401, "unauthorized",
                          "no inbound mailbox by that name, or a missing or wrong token",
                          headers={"WWW-Authenticate": "Bearer"})
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self._too_large()
        try:
            body = await _read_body(request, self.max_bytes)
        except _TooLarge:
            return self._too_large()
        except ClientDisconnect:
            # The ESP went away mid-body; it will retry. Not our error, and nobody listens.
            log.debug("client disconnected before the end of the body",
                      extra={"action": "client_disconnected", "mailbox": mailbox.name})
            return _error(400, "client_disconnected", "the body ended early")
        try:
            raw, token = await run_in_threadpool(
                _parse, request.headers.get("content-type"), body)
        except _BadForm as exc:
            return _error(400, "malformed_form", str(exc))
        if raw is None:
            return _error(415, "unsupported_media_type",
                          "send message/rfc822, or a form with an `email` or `body-mime` field")
        if not raw.strip():
            return _error(422, "no_message", "the request carries no message")
        if token is None:
            return _error(422, "not_a_probe", f"the message has no {TOKEN_HEADER} header")
        if len(token) > MAX_TOKEN_CHARS:  # no send of ours waits for it
            return _error(422, "not_a_probe", f"the {TOKEN_HEADER} header is not one we sent")
        try:
            await self._keep(mailbox.name, token, raw)
        except ReceiveError as exc:
            log.warning("inbound message not stored", extra={
                "action": "inbound_unavailable", "mailbox": mailbox.name, "error": exc.text})
            return _error(503, "unavailable", "the message could not be stored; retry later",
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return JSONResponse({"stored": True, "mailbox": mailbox.name, "token": token})

    async def _keep(self, mailbox: str, token: str, raw: bytes) -> None:
        if self.store is None:
            await asyncio.to_thread(deliver, inbound_dir(self.data_dir, mailbox), raw)
        else:
            await self.store.put(mailbox, token, raw, datetime.now(UTC))

    def _too_large(self) -> Response:
        return _error(413, "too_large", "the request body is over the size limit",
                      details={"max_bytes": self.max_bytes})


def _authorized(request: Request, mailbox: InboundMailbox | None) -> bool:
    """Whether the request carries `mailbox`'s token; False, after the same work, for
    no mailbox, so that timing does not tell a wrong name from a wrong token."""
    if mailbox is None:
        expected = _DECOY_DIGEST
    else:
        expected = hashlib.sha256(mailbox.token.get_secret_value().encode()).digest()
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    offered = credentials.strip() if scheme.lower() == "bearer" else ""
    offered = offered or request.query_params.get("token", "")
    # Constant time, so the token cannot be guessed byte by byte from response times;
    # digests, so neither does the time depend on the token's length.
    match = secrets.compare_digest(hashlib.sha256(offered.encode()).digest(), expected)
    return match and bool(offered) and mailbox is not None


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing to buffer more than `limit` bytes whatever Content-Length said."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(content_type: str | None, body: bytes) -> tuple[bytes | None, str | None]:
    """The raw message (as `_message_bytes`) and its probe token. Blocking: run it in a
    worker thread."""
    raw = _message_bytes(content_type, body)
    token = token_of(parse_headers(raw)) if raw and raw.strip() else None
    return raw, token


def _message_bytes(content_type: str | None, body: bytes) -> bytes | None:
    """The raw message in the body; b"" when the form has no message field; None when
    the content type is not one we take."""
    kind, params = parse_options_header(content_type)
    if kind == b"message/rfc822":
        return body
    if kind == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise _BadForm("multipart/form-data without a boundary")
        return _first_field(_multipart_fields(body, boundary))
    if kind == b"application/x-www-form-urlencoded":
        # latin-1 maps each percent-decoded byte to one character and back, exactly.
        pairs = parse_qsl(body.decode("latin-1"), encoding="latin-1")
        return _first_field({k.encode("latin-1"): v.encode("latin-1") for k, v in pairs})
    return None


def _first_field(fields: dict[bytes, bytes]) -> bytes:
    return next((fields[name] for name in MESSAGE_FIELDS if name in fields), b"")


def _multipart_fields(body: bytes, boundary: bytes) -> dict[bytes, bytes]:
    """The exact bytes of the message fields; other parts (attachments) are skipped."""
    fields: dict[bytes, bytes] = {}
    state: dict[str, Any] = {"header": b"", "value": b"", "name": None, "data": [],
                             "ended": False}

    def on_part_begin() -> None:
        state.update(name=None, data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        if state["header"].lower() == b"content-disposition":
            _, options = parse_options_header(state["value"])
            state["name"] = options.get(b"name")
        state.update(header=b"", value=b"")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["name"] in MESSAGE_FIELDS:
            state["data"].append(data[start:end])

    def on_part_end() -> None:
        if state["name"] in MESSAGE_FIELDS and state["name"] not in fields:
            fields[state["name"]] = b"".join(state["data"])

    def on_end() -> None:
        state["ended"] = True

    try:
        # The constructor refuses a boundary over 256 bytes (RFC 2046 §5.1.1 allows 70).
        parser = MultipartParser(boundary, {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field,
            "on_header_value": on_header_value, "on_header_end": on_header_end,
            "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end,
        })
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:  # the base of every python-multipart error
        raise _BadForm(f"malformed multipart body: {exc}") from None
    if not state["ended"]:  # finalize() does not check (python-multipart 0.0.x)
        raise _BadForm("malformed multipart body: it ends before the closing boundary")
    return fields


def _error(status: int, code: str, message: str, *, details: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)
