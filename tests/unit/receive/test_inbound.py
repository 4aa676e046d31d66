"""Inbound-parse endpoint through real HTTP: uvicorn on loopback, httpx as the ESP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from monitor.config import Config, MailboxConfig
from monitor.receive import ReceiveOptions, ReceiveStatus, inbound, intake, poll_pending
from monitor.receive.errors import ReceiveError
from monitor.receive.inbound import StoredMessage
from monitor.receive.intake import inbound_app
from monitor.receive.maildir import inbound_dir
from monitor.results import FailureClass
from tests.unit.receive.fakes import pending

SECRET = "inbound-secret-1"
NOW = datetime.now(UTC)
MAX_BYTES = 4096


def probe_message(token: str | None = "dm-in-1", *, size: int = 0) -> bytes:
    header = f"X-Delivery-Monitor-Token: {token}\r\n" if token else ""
    return (f"Received: from mx.esp.example by inbound.esp.example; {format_datetime(NOW)}"
            f"\r\nFrom: probe@example.com\r\nTo: seed@inbound.example\r\n"
            f"Subject: probe\r\n{header}\r\nToken: {token}\r\n" + "x" * size).encode()


@pytest.fixture
def config() -> Config:
    return Config(mailboxes=(
        MailboxConfig.model_validate({"name": "hook", "address": "seed@inbound.example",
                                      "kind": "inbound", "token": SECRET}),
        MailboxConfig.model_validate({"name": "md", "address": "x@example.test",
                                      "kind": "maildir", "path": "/nonexistent"}),
    ))


@contextlib.asynccontextmanager
async def serving(app: Starlette, **options: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, **options))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    for _ in range(200):
        if uv.started:
            break
        await asyncio.sleep(0.02)
    assert uv.started
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


@pytest.fixture
async def server(config: Config, tmp_path: Path) -> AsyncIterator[str]:
    async with serving(inbound_app(config, tmp_path, max_bytes=MAX_BYTES)) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        yield http


def stored(tmp_path: Path) -> list[Path]:
    box = inbound_dir(tmp_path, "hook")
    return [p for sub in ("new", "cur", "tmp") for p in (box / sub).glob("*")]


def sendgrid(raw: bytes) -> list[tuple[str, tuple[str | None, bytes | str]]]:
    """SendGrid Inbound Parse, "POST the raw, full MIME message": `email` plus envelope fields."""
    return [("dkim", (None, "{@example.com : pass}")), ("to", (None, "seed@inbound.example")),
            ("from", (None, "probe@example.com")), ("email", (None, raw)),
            ("charsets", (None, '{"to":"UTF-8","email":"UTF-8"}')), ("SPF", (None, "pass"))]


def mailgun(raw: bytes) -> list[tuple[str, tuple[str | None, bytes | str]]]:
    """A Mailgun route forwarding to a URL ending in "mime": `body-mime` plus signature."""
    return [("recipient", (None, "seed@inbound.example")), ("sender", (None, "probe@example.com")),
            ("timestamp", (None, "1796040000")), ("token", (None, "abc")),
            ("signature", (None, "def")), ("body-mime", (None, raw))]


async def found(config: Config, tmp_path: Path, token: str) -> ReceiveStatus:
    now = datetime.now(UTC)
    [result] = await poll_pending(config, [pending(token, "hook", now)], now,
                                   options=ReceiveOptions(data_dir=tmp_path))
    return result.status


async def test_raw_message_with_bearer_token_is_stored_and_found(
        client: httpx.AsyncClient, config: Config, tmp_path: Path) -> None:
    response = await client.post("/inbound/hook", content=probe_message(),
                                  headers={"Content-Type": "message/rfc822",
                                           "Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": True, "mailbox": "hook", "token": "dm-in-1"}
    [path] = stored(tmp_path)
    assert path.read_bytes() == probe_message()  # byte for byte
    assert await found(config, tmp_path, "dm-in-1") is ReceiveStatus.ARRIVED


@pytest.mark.parametrize("form", [sendgrid, mailgun])
async def test_esp_form_posts_with_url_token_are_found(
        client: httpx.AsyncClient, config: Config, tmp_path: Path, form: object) -> None:
    raw = probe_message("dm-form") + "\r\nnon-ASCII body: é\r\n".encode()
    assert callable(form)
    response = await client.post(f"/inbound/hook?token={SECRET}", files=form(raw))
    assert response.status_code == 200, response.text
    [path] = stored(tmp_path)
    assert path.read_bytes() == raw
    assert await found(config, tmp_path, "dm-form") is ReceiveStatus.ARRIVED


async def test_url_encoded_body_mime(client: httpx.AsyncClient, tmp_path: Path) -> None:
    response = await client.post(f"/inbound/hook?token={SECRET}",
                                 data={"body-mime": probe_message("dm-url").decode()})
    assert response.status_code == 200, response.text
    [path] = stored(tmp_path)
    assert path.read_bytes() == probe_message("dm-url")


@pytest.mark.parametrize(("headers", "params"), [
    ({}, {}),
    ({"Authorization": "Bearer wrong"}, {}),
    ({}, {"token": "wrong"}),
    ({"Authorization": f"Basic {SECRET}"}, {}),
    ({}, {"token": SECRET[:-1]}),
    ({"Authorization": "Bearer"}, {"token": ""}),
])
async def test_bad_token_is_401_and_nothing_stored(client: httpx.AsyncClient, tmp_path: Path,
                                                   headers: dict[str, str],
                                                   params: dict[str, str]) -> None:
    response = await client.post("/inbound/hook", content=probe_message(), params=params,
                                 headers={"Content-Type": "message/rfc822", **headers})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert SECRET not in response.text
    assert stored(tmp_path) == []


async def test_oversized_body_is_413_with_or_without_content_length(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    headers = {"Content-Type": "message/rfc822", "Authorization": f"Bearer {SECRET}"}
    response = await client.post("/inbound/hook", content=probe_message(size=MAX_BYTES),
                                 headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == {"code": "too_large", "message":
                                        "the request body is over the size limit",
                                        "details": {"max_bytes": MAX_BYTES}}

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to trust
        yield probe_message()
        for _ in range(10):
            yield b"y" * 1000

    response = await client.post("/inbound/hook", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert stored(tmp_path) == []


@pytest.mark.parametrize(("body", "content_type", "code"), [
    (probe_message(None), "message/rfc822", "not_a_probe"),
    (b"", "message/rfc822", "no_message"),
    (b"   \r\n", "message/rfc822", "no_message"),
])
async def test_no_message_or_no_token_is_422(client: httpx.AsyncClient, tmp_path: Path,
                                             body: bytes, content_type: str, code: str) -> None:
    response = await client.post("/inbound/hook", content=body,
                                 headers={"Content-Type": content_type,
                                          "Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert stored(tmp_path) == []


async def test_form_without_a_message_field_is_422(client: httpx.AsyncClient,
                                                   tmp_path: Path) -> None:
    response = await client.post(f"/inbound/hook?token={SECRET}",
                                 files=[("text", (None, probe_message()))])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_message"
    assert stored(tmp_path) == []


async def test_other_failures_are_json_errors(client: httpx.AsyncClient, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    cases = [
        ("/inbound/hook", {"Content-Type": "application/json", **auth}, 415,
         "unsupported_media_type"),
        ("/inbound/hook", {"Content-Type": "multipart/form-data", **auth}, 400, "malformed_form"),
    ]
    for path, headers, status, code in cases:
        response = await client.post(path, content=probe_message(), headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path
    assert (await client.get("/inbound/hook")).status_code == 405
    assert stored(tmp_path) == []




@pytest.mark.parametrize(("path", "headers", "params"), [
    ("/inbound/nobody", {}, {}),
    ("/inbound/nobody", {"Authorization": f"Bearer {SECRET}"}, {}),  # another mailbox's token
    ("/inbound/nobody", {}, {"token": "wrong"}),
    ("/inbound/md", {"Authorization": f"Bearer {SECRET}"}, {}),  # exists, but not inbound
    ("/inbound/hook", {}, {}),
    ("/inbound/hook", {"Authorization": "Bearer wrong"}, {}),
])
async def test_unknown_mailbox_and_bad_token_answer_alike(
        client: httpx.AsyncClient, tmp_path: Path, path: str, headers: dict[str, str],
        params: dict[str, str]) -> None:
    """Nothing in the answer tells whether a mailbox name exists (no enumeration)."""
    response = await client.post(path, content=probe_message(), params=params,
                                 headers={"Content-Type": "message/rfc822", **headers})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": {
        "code": "unauthorized", "details": {},
        "message": "no inbound mailbox by that name, or a missing or wrong token"}}
    assert stored(tmp_path) == []


def _part(headers: bytes, value: bytes = b"x", boundary: bytes = b"B") -> bytes:
    """One part in a form: `headers`, the blank line, `value`, the closing boundary."""
    return b"--%s\r\n%s\r\n\r\n%s\r\n--%s--\r\n" % (boundary, headers, value, boundary)


EMAIL_FIELD = b'Content-Disposition: form-data; name="email"'


@pytest.mark.parametrize(("content_type", "body", "status"), [
    # python-multipart refuses boundaries over 256 bytes (RFC 2046 §5.1.1 allows 70).
    ("multipart/form-data; boundary=" + "b" * 257, _part(EMAIL_FIELD, boundary=b"b" * 257), 400),
    ("multipart/form-data; boundary=" + "b" * 10_000, b"--" + b"b" * 10_000 + b"\r\n", 400),
    ("multipart/form-data", _part(EMAIL_FIELD), 400),  # no boundary
    ('multipart/form-data; boundary=""', _part(EMAIL_FIELD), 400),
    ("multipart/form-data; boundary", _part(EMAIL_FIELD), 400),
    ("multipart/form-data;;;=;boundary=;", _part(EMAIL_FIELD), 400),
    ('multipart/form-data; boundary="B', _part(EMAIL_FIELD), 400),  # unterminated quote
    ("multipart/form-data; boundary*=utf-8''%ff%fe", _part(EMAIL_FIELD), 400),
    ("multipart/form-data; boundary=B; boundary=C", _part(EMAIL_FIELD, boundary=b"C"), 422),
    ("multipart/form-data; boundary=\xe9\xff", _part(EMAIL_FIELD, boundary=b"\xe9\xff"), 422),
    ("multipart/form-data; boundary=B", _part(EMAIL_FIELD + b"x" * 100_000), 400),  # long line
    ("multipart/form-data; boundary=B", _part(b"X" * 100_000 + b": v"), 400),
    ("multipart/form-data; boundary=B", _part(b"\xff\xfe: v"), 400),  # non-ASCII header name
    ("multipart/form-data; boundary=B", _part(b"\r\n".join([b"X: v"] * 9)), 400),  # 9 headers
    ("multipart/form-data; boundary=B",
     _part(b'Content-Disposition: form-data; name="\xff\xfe"'), 422),  # non-UTF-8 field name
    ("multipart/form-data; boundary=B",
     _part(b"Content-Disposition: form-data; name*=utf-8''%ff"), 422),
    ("multipart/form-data; boundary=B", b"--B\r\n" + EMAIL_FIELD + b"\r\n\r\ncut", 400),
    ("multipart/form-data; boundary=B", b"\xff" * 1000, 400),
    ("application/x-www-form-urlencoded", b"%ff%fe=\xff&&&===&email", 422),
    ("text/plain; charset=\xff", b"x", 415),
    ("message/rfc822; x*=''%", probe_message(), 200),
])
async def test_hostile_forms_are_4xx_never_500(config: Config, tmp_path: Path,
                                               content_type: str, body: bytes,
                                               status: int) -> None:
    # A roomier limit than MAX_BYTES: the parser's own limits are what is under test.
    async with serving(inbound_app(config, tmp_path, max_bytes=1_000_000)) as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post(f"/inbound/hook?token={SECRET}", content=body,
                                     headers=[(b"Content-Type", content_type.encode("latin-1"))])
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"]["code"] == "malformed_form"


async def test_a_100_kb_boundary_is_400(config: Config, tmp_path: Path) -> None:
    # h11 refuses header blocks over 16 KB by default; not every server in front does.
    boundary = "b" * 100_000
    async with serving(inbound_app(config, tmp_path, max_bytes=1_000_000),
                       h11_max_incomplete_event_size=1_000_000) as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post(
            f"/inbound/hook?token={SECRET}", content=b"--" + boundary.encode() + b"\r\n",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "malformed_form" and "boundary" in error["message"].lower()
    assert len(error["message"]) < 200  # the boundary is not echoed


async def test_client_leaving_mid_body_is_not_an_error(server: str,
                                                       caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.inbound")
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")
    logging.getLogger("uvicorn.error").addHandler(caplog.handler)  # uvicorn does not propagate
    try:
        host, port = server.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /inbound/hook?token={SECRET} HTTP/1.1\r\nHost: {host}\r\n"
                     "Content-Type: message/rfc822\r\nContent-Length: 1000\r\n\r\n"
                     "Subject: half".encode())
        await writer.drain()
        writer.close()  # 1000 bytes promised, 13 sent
        await writer.wait_closed()
        for _ in range(500):  # whichever comes first: our debug line or uvicorn's traceback
            if caplog.records:
                break
            await asyncio.sleep(0.02)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(caplog.handler)
    [record] = caplog.records
    assert record.name == "monitor.inbound", record.getMessage()
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert getattr(record, "action", None) == "client_disconnected"


async def test_forms_are_parsed_off_the_event_loop(client: httpx.AsyncClient, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """While one form is being parsed, the loop answers another request."""
    parsing, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}
    real = intake._multipart_fields

    def slow_parse(body: bytes, boundary: bytes) -> dict[bytes, bytes]:
        seen["thread"] = threading.get_ident()
        parsing.set()
        # On the loop thread this wait would block the loop, so nobody could set `release`.
        seen["released"] = release.wait(timeout=5)
        return real(body, boundary)

    monkeypatch.setattr(intake, "_multipart_fields", slow_parse)
    form = asyncio.create_task(client.post(f"/inbound/hook?token={SECRET}",
                                           files=sendgrid(probe_message("dm-slow"))))
    assert await asyncio.to_thread(parsing.wait, 5)
    other = await client.post("/inbound/hook", content=probe_message("dm-quick"),
                              headers={"Content-Type": "message/rfc822",
                                       "Authorization": f"Bearer {SECRET}"})
    release.set()
    assert other.status_code == 200, other.text
    assert (await form).status_code == 200
    assert seen["released"] is True, "the parser blocked the event loop"
    assert seen["thread"] != threading.get_ident()
    assert len(stored(tmp_path)) == 2


@dataclass
class MemoryInbound:
    """An `InboundStore` in a dict, the seam the service fills with the database."""

    messages: dict[str, StoredMessage] = field(default_factory=dict)
    away: bool = False

    async def put(self, mailbox: str, token: str | None, raw: bytes,
                  received_at: datetime) -> None:
        if self.away:
            raise ReceiveError(FailureClass.NETWORK, "the database is unreachable")
        key = f"{mailbox}/{len(self.messages)}"
        self.messages[key] = StoredMessage(key, token, received_at, raw)

    async def find(self, mailbox: str, tokens: Collection[str],
                   limit: int) -> Sequence[StoredMessage]:
        return sorted((m for key, m in self.messages.items()
                       if key.startswith(f"{mailbox}/") and m.token in tokens),
                      key=lambda m: m.received_at, reverse=True)[:limit]

    async def delete(self, ids: Collection[str]) -> None:
        for key in ids:
            self.messages.pop(key, None)

    async def sweep(self, mailbox: str, before: datetime, keep: Collection[str]) -> int:
        stale = [key for key, m in self.messages.items() if key.startswith(f"{mailbox}/")
                 and m.received_at < before and m.token not in keep]
        await self.delete(stale)
        return len(stale)


async def test_with_a_store_posts_go_to_it_not_to_disk(config: Config, tmp_path: Path) -> None:
    memory = MemoryInbound()
    async with serving(inbound_app(config, tmp_path, max_bytes=MAX_BYTES, store=memory)) as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        raw = probe_message("dm-db") + "\r\nnon-ASCII body: é\r\n".encode()
        response = await client.post(f"/inbound/hook?token={SECRET}", files=sendgrid(raw))
    assert response.status_code == 200, response.text
    [message] = memory.messages.values()
    assert (message.token, message.raw) == ("dm-db", raw)  # byte for byte
    assert stored(tmp_path) == []
    now = datetime.now(UTC)
    options = ReceiveOptions(data_dir=tmp_path, inbound_store=memory)
    [result] = await poll_pending(config, [pending("dm-db", "hook", now)], now, options=options,
                                  recorded={"hook": ()})
    assert (result.status, result.backend, result.deleted) == (
        ReceiveStatus.ARRIVED, "inbound", False)
    assert len(memory.messages) == 1, "recorded={} deletes nothing yet"
    [result] = await poll_pending(config, [pending("dm-db", "hook", now)], now, options=options)
    assert result.deleted and memory.messages == {}


async def test_a_store_that_is_away_is_503_so_the_esp_retries(config: Config,
                                                              tmp_path: Path) -> None:
    memory = MemoryInbound(away=True)
    async with serving(inbound_app(config, tmp_path, store=memory)) as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post("/inbound/hook", content=probe_message(), headers={
            "Content-Type": "message/rfc822", "Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(intake.RETRY_AFTER_SECONDS)
    assert response.json()["error"]["code"] == "unavailable"
    assert stored(tmp_path) == [], "no fallback to the local disk"


async def test_a_token_longer_than_any_we_send_is_422(client: httpx.AsyncClient,
                                                      tmp_path: Path) -> None:
    response = await client.post("/inbound/hook", content=probe_message("dm-" + "f" * 62),
                                 headers={"Content-Type": "message/rfc822",
                                          "Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "not_a_probe"
    assert stored(tmp_path) == []


async def test_a_store_scan_parses_headers_off_the_event_loop(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = MemoryInbound()
    now = datetime.now(UTC)
    await memory.put("hook", "dm-parse", probe_message("dm-parse", size=100_000), now)
    threads: list[int] = []
    real = inbound._parse_all

    def recording(messages: Sequence[StoredMessage]) -> list[Any]:
        threads.append(threading.get_ident())
        return real(messages)

    monkeypatch.setattr(inbound, "_parse_all", recording)
    [result] = await poll_pending(config, [pending("dm-parse", "hook", now)], now,
                                  options=ReceiveOptions(inbound_store=memory))
    assert result.status is ReceiveStatus.ARRIVED
    assert threads and threads[0] != threading.get_ident()
