"""The inbound kind: ESPs post the probe message to us instead of us polling.

`POST /inbound/{mailbox}` accepts

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
answer is 200.

Where accepted messages go is an `InboundStore` (below), the seam between this
route, the `inbound` backend's scan (`InboundBackend`) and storage. The service
injects one that keeps them in the database (`monitor.service.inbound`), so the
replica that answers the POST and the one whose receive job looks for the token
need not be the same; the route gets it as `store`, the backend as
`ReceiveOptions.inbound_store`. Without one (the CLI, tests) they go into a
Maildir under `<data_dir>/inbound/<mailbox>/` (`maildir.deliver`), where the
backend finds them like any Maildir — also after a restart, but only on that disk.

Forms and message headers are parsed in a worker thread, here and in the scan: a
10 MB body takes long enough in pure Python to stall every other request and timer
on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl

from pydantic import SecretStr, model_validator
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.config import Config, MailboxConfig
from monitor.receive.backend import (
    FoundMessage,
    ReceiveOptions,
    Scan,
    Trace,
    deletion,
    missing,
    parse_headers,
    token_of,
)
from monitor.receive.errors import ReceiveError
from monitor.receive.maildir import deliver, inbound_dir, scan_maildir
from monitor.receive.result import Placement
from monitor.results import TOKEN_HEADER

log = logging.getLogger("monitor.inbound")

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MESSAGE_FIELDS = (b"email", b"body-mime")  # SendGrid Inbound Parse, Mailgun routes
MAX_TOKEN_CHARS = 64  # ours are 27 (dm- and 24 hex digits); the token columns hold 64
RETRY_AFTER_SECONDS = 30  # asked of the ESP when the store is away
# Compared against when the mailbox does not exist, so that case costs the same work.
_DECOY_DIGEST = hashlib.sha256(secrets.token_bytes(32)).digest()


class InboundMailbox(MailboxConfig):
    kind: Literal["inbound"] = "inbound"
    token: SecretStr  # authenticates the posting service

    @model_validator(mode="before")
    @classmethod
    def _has_what_it_needs(cls, data: Any) -> Any:
        if missing(data, ("token",)):
            raise ValueError("kind inbound needs `token`")
        return data


@dataclass(frozen=True)
class StoredMessage:
    """A posted message as an `InboundStore` hands it back to a scan."""

    id: str
    token: str | None
    received_at: datetime
    raw: bytes  # the message, or at least its first MAX_HEADER_BYTES (the header block)


class InboundStore(Protocol):
    """Where posted messages wait for the scan that finds them. A store that cannot
    be reached raises `ReceiveError` (the route answers 503, a scan reports an error)."""

    async def put(self, mailbox: str, token: str | None, raw: bytes,
                  received_at: datetime) -> None:
        """Keep one message, durably, before the route answers 200."""
        ...

    async def find(self, mailbox: str, tokens: Collection[str],
                   limit: int) -> Sequence[StoredMessage]:
        """The `limit` newest messages of `mailbox` carrying one of `tokens`, newest first."""
        ...

    async def delete(self, ids: Collection[str]) -> None:
        """Remove these messages; one already gone is fine."""
        ...

    async def sweep(self, mailbox: str, before: datetime, keep: Collection[str]) -> int:
        """Remove the mailbox's messages received before `before` whose token is not in
        `keep`; return how many went."""
        ...


class InboundBackend:
    """What `POST /inbound/{mailbox}` stored: in `options.inbound_store` when there is
    one, else in the Maildir under `options.data_dir`, scanned like any other."""

    async def scan(self, mailbox: InboundMailbox, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        find = frozenset(tokens)
        if options.inbound_store is not None:
            return await scan_store(options.inbound_store, mailbox.name, find, options, trace,
                                    deletion(find, delete))
        path = inbound_dir(options.data_dir, mailbox.name)
        if not path.exists():  # nothing was ever posted: an empty mailbox, not an error
            return Scan(folders=("INBOX",))
        return await asyncio.to_thread(scan_maildir, path, ("INBOX",), find, options, trace,
                                       deletion(find, delete))


async def scan_store(store: InboundStore, mailbox: str, tokens: frozenset[str],
                     options: ReceiveOptions, trace: Trace, delete: frozenset[str]) -> Scan:
    """The scan of `backend.py` over a store: find `tokens`, delete the messages of
    `delete` and sweep stale probes, only after `trace.commit()`. Posted mail has one
    folder, the inbox. A token posted twice (an ESP's retry) is found once, newest."""
    trace.step = "fetch"
    messages = await store.find(mailbox, tokens | delete, options.max_messages)
    trace.checkpoint()
    headers = await asyncio.to_thread(_parse_all, messages)  # off the loop: up to 256 KB each
    trace.checkpoint()
    now = datetime.now(UTC)
    scan = Scan(folders=("INBOX",))
    remove: list[str] = []
    for message, parsed in zip(messages, headers, strict=True):
        token = message.token
        if token is None:
            continue
        if token in tokens and token not in scan.found:
            scan.found[token] = FoundMessage(token=token, folder="INBOX",
                                             placement=Placement.INBOX, headers=parsed,
                                             seen_at=now)
        if token in delete:
            remove.append(message.id)
    # Deleting is the last step, and only once the poller is sure to use the result.
    trace.step = "delete"
    trace.commit()
    if remove:
        await store.delete(remove)
    scan.swept = await store.sweep(mailbox, now - options.sweep_after, tokens | delete)
    scan.found = {t: replace(m, deleted=t in delete) for t, m in scan.found.items()}
    return scan


def _parse_all(messages: Sequence[StoredMessage]) -> list[Message]:
    return [parse_headers(message.raw) for message in messages]


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
