"""Inbound-parse endpoint through real HTTP: uvicorn on loopback, httpx as the ESP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from monitor.config import Config, MailboxConfig
from monitor.receive import ReceiveOptions, ReceiveStatus, check_pending, inbound_app
from monitor.receive.maildir import inbound_dir
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


@pytest.fixture
async def server(config: Config, tmp_path: Path) -> AsyncIterator[str]:
    app = inbound_app(config, tmp_path, max_bytes=MAX_BYTES)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
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
    [result] = await check_pending(config, [pending(token, "hook", now)], now,
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
        ("/inbound/nobody", {"Content-Type": "message/rfc822", **auth}, 404, "not_found"),
        ("/inbound/md", {"Content-Type": "message/rfc822", **auth}, 404, "not_found"),
        ("/inbound/hook", {"Content-Type": "application/json", **auth}, 415,
         "unsupported_media_type"),
        ("/inbound/hook", {"Content-Type": "multipart/form-data", **auth}, 400, "malformed_form"),
    ]
    for path, headers, status, code in cases:
        response = await client.post(path, content=probe_message(), headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path
    assert (await client.get("/inbound/hook")).status_code == 405
    assert stored(tmp_path) == []


