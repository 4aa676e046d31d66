"""The IMAP backend against a misbehaving server: classified failures, bounded time."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, MailboxConfig
from monitor.probe.result import FailureClass
from monitor.receive import ReceiveOptions, ReceiveResult, ReceiveStatus, poll_pending
from monitor.receive.result import Placement
from monitor.sandbox import CertificateFiles
from tests.unit.receive.fakes import pending
from tests.unit.receive.hostile_imap import DROP, HANG, STARTTLS, HostileImap

OPTIONS = ReceiveOptions(op_timeout=0.5, scan_timeout=3.0)
BOUND = 2.0  # seconds any failure below must take at most


@pytest.fixture
async def peer() -> AsyncIterator[HostileImap]:
    server = await HostileImap().start()
    yield server
    await server.stop()


async def check(server: HostileImap, token: str = "dm-x", **fields: Any) -> ReceiveResult:
    mailbox = MailboxConfig.model_validate({
        "name": "hostile", "address": "seed@example.test", "kind": "imap", "host": "127.0.0.1",
        "port": server.port, "tls": "none", "username": "seed", "password": "secret-pw",
        "deliver_within": "1h", **fields})
    now = datetime.now(UTC)
    started = time.monotonic()
    [result] = await poll_pending(Config(mailboxes=(mailbox,)),
                                   [pending(token, "hostile", now, timedelta(hours=1))], now,
                                   options=OPTIONS)
    assert time.monotonic() - started < BOUND, "not bounded"
    return result


async def test_a_well_behaved_script_finds_the_message(peer: HostileImap) -> None:
    result = await check(peer)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert (result.folder, result.placement) == ("INBOX", Placement.INBOX)
    assert peer.seen.count("SEARCH") == 2  # INBOX and the \Junk-flagged "Spam"
    assert "STORE" in peer.seen and "EXPUNGE" in peer.seen


async def test_garbage_greeting_is_protocol(peer: HostileImap) -> None:
    peer.greeting = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.PROTOCOL, "connect")


async def test_silent_server_is_timeout(peer: HostileImap) -> None:
    peer.greeting = HANG
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.TIMEOUT, "connect")


async def test_no_answer_to_select_is_timeout_naming_the_folder(peer: HostileImap) -> None:
    peer.script["SELECT"] = HANG
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.TIMEOUT, "select")
    assert result.error is not None and "folder 'INBOX'" in result.error


async def test_connection_dropped_mid_fetch_is_network(peer: HostileImap) -> None:
    async def half_a_literal(writer: asyncio.StreamWriter, tag: bytes) -> bool:
        writer.write(b"* 1 FETCH (UID 1 BODY[HEADER] {500}\r\nX-Delivery-Monitor-Token: dm")
        await writer.drain()
        return False  # and hang up

    peer.script["FETCH"] = half_a_literal
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.NETWORK, "fetch")


async def test_garbage_instead_of_fetch_data_is_protocol(peer: HostileImap) -> None:
    peer.script["FETCH"] = b"\x00\xff garbage (((\r\n{tag} OK done\r\n"
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.PROTOCOL, "fetch")


async def test_dropped_after_login_is_network(peer: HostileImap) -> None:
    peer.script["LIST"] = DROP
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.NETWORK, "list")


async def test_login_refused_is_auth_and_the_password_stays_out(peer: HostileImap) -> None:
    peer.script["LOGIN"] = b"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    result = await check(peer)
    assert (result.failure_class, result.step) == (FailureClass.AUTH, "login")
    assert "secret-pw" not in result.model_dump_json()


async def test_missing_configured_folder_is_permanent(peer: HostileImap) -> None:
    peer.script["SELECT"] = b"{tag} NO Mailbox doesn't exist: Archive\r\n"
    result = await check(peer, folders=["Archive"])
    assert (result.failure_class, result.step) == (FailureClass.PERMANENT, "select")
    assert result.error is not None and "Mailbox doesn't exist" in result.error


async def test_starttls_not_offered_never_sends_the_password(peer: HostileImap) -> None:
    peer.script["CAPABILITY"] = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
    result = await check(peer, tls="starttls")
    assert (result.failure_class, result.step) == (FailureClass.TLS, "starttls")
    assert "LOGIN" not in peer.seen


async def test_implicit_tls_against_a_plaintext_server_is_tls(peer: HostileImap) -> None:
    result = await check(peer, tls="implicit")
    assert (result.failure_class, result.step) == (FailureClass.TLS, "connect")


async def test_starttls_with_an_untrusted_certificate_is_tls(
        peer: HostileImap, server_ctx: ssl.SSLContext, good_certs: CertificateFiles) -> None:
    peer.tls = server_ctx
    peer.script["STARTTLS"] = STARTTLS
    result = await check(peer, tls="starttls")
    assert (result.failure_class, result.step) == (FailureClass.TLS, "starttls")
    assert result.error is not None and "unknown CA" in result.error
    assert "LOGIN" not in peer.seen

    peer.seen.clear()
    result = await check(peer, tls="starttls", ca_file=Path(good_certs.ca_file))
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert peer.seen[:3] == ["CAPABILITY", "STARTTLS", "CAPABILITY"]
