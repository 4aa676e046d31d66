"""IMAP `auth: xoauth2` against the scripted peer: the exact SASL exchange, the token
file read at every scan, and the token kept out of results, errors and logs."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, MailboxConfig
from monitor.probe.result import FailureClass
from monitor.receive import ReceiveOptions, ReceiveResult, ReceiveStatus, poll_pending
from tests.unit.receive.fakes import pending
from tests.unit.receive.hostile_imap import HostileImap, Sasl

OPTIONS = ReceiveOptions(op_timeout=0.5, scan_timeout=3.0)
USER = "seed@example.test"
TOKEN = "ya29.a0AfB_test-TOKEN~value/42+x="
# What Google's XOAUTH2 page specifies the client sends, before base64.
RESPONSE = f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode()
ENCODED = base64.b64encode(RESPONSE).decode()
# dovecot's error challenge (mech-oauth2.c), the shape Gmail uses too.
ERROR_CHALLENGE = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"mail"}')
REFUSED = b"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"


@pytest.fixture
async def peer() -> AsyncIterator[HostileImap]:
    server = await HostileImap().start()
    yield server
    await server.stop()


def xoauth2_mailbox(server: HostileImap, **fields: Any) -> MailboxConfig:
    settings: dict[str, Any] = {
        "name": "oauth", "address": USER, "kind": "imap", "host": "127.0.0.1",
        "port": server.port, "tls": "none", "username": USER, "auth": "xoauth2",
        "deliver_within": "1h"}
    settings.update(fields)
    if "token_file" not in settings:
        settings.setdefault("token", TOKEN)
    return MailboxConfig.model_validate(settings)


async def check(mailbox: MailboxConfig) -> ReceiveResult:
    now = datetime.now(UTC)
    [result] = await poll_pending(Config(mailboxes=(mailbox,)),
                                   [pending("dm-x", mailbox.name, now, timedelta(hours=1))],
                                   now, options=OPTIONS)
    return result


def assert_token_absent(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and ENCODED not in text


async def test_authenticate_sends_the_documented_xoauth2_response(peer: HostileImap) -> None:
    result = await check(xoauth2_mailbox(peer))
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert peer.sasl == [("XOAUTH2", [RESPONSE])]
    assert "LOGIN" not in peer.seen
    assert peer.seen[:2] == ["CAPABILITY", "AUTHENTICATE"]


async def test_token_file_is_read_again_at_every_scan(peer: HostileImap, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")  # a trailing newline, as `echo` writes it
    mailbox = xoauth2_mailbox(peer, token_file=token_file)
    assert (await check(mailbox)).status is ReceiveStatus.ARRIVED

    token_file.write_text("ya29.refreshed-by-the-sidecar")
    assert (await check(mailbox)).status is ReceiveStatus.ARRIVED
    assert [responses for _, responses in peer.sasl] == [
        [RESPONSE],
        [f"user={USER}\x01auth=Bearer ya29.refreshed-by-the-sidecar\x01\x01".encode()]]


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot read token_file {path}: No such file or directory"),
    ("", "token_file {path} is empty"),
    ("two words", "token_file {path} does not hold an access token (one word)"),
])
async def test_an_unusable_token_file_is_auth_naming_the_file(
        peer: HostileImap, tmp_path: Path, content: str | None, problem: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("placeholder")  # exists at load, as the validator requires
    mailbox = xoauth2_mailbox(peer, token_file=token_file)
    if content is None:
        token_file.unlink()  # the sidecar is gone
    else:
        token_file.write_text(content)
    result = await check(mailbox)
    assert (result.status, result.failure_class, result.step) == (
        ReceiveStatus.ERROR, FailureClass.AUTH, "login")
    assert result.error == f"mailbox oauth (imap) at login: {problem.format(path=token_file)}"
    assert "AUTHENTICATE" not in peer.seen  # nothing was sent
    assert content is None or content == "" or content not in result.model_dump_json()


async def test_a_refused_token_answers_the_error_challenge_and_is_auth(
        peer: HostileImap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    peer.script["AUTHENTICATE"] = Sasl(reply=REFUSED, error_challenge=ERROR_CHALLENGE)
    result = await check(xoauth2_mailbox(peer))
    assert (result.failure_class, result.step) == (FailureClass.AUTH, "login")
    assert result.error is not None and "AUTHENTICATIONFAILED" in result.error
    # The initial response, then an empty one to the challenge: never the token twice.
    assert peer.sasl == [("XOAUTH2", [RESPONSE, b""])]
    assert "AUTHENTICATE" in caplog.text  # IMAPClient's own log lines were captured...
    assert_token_absent(result.model_dump_json(), caplog.text)  # ...without the token


async def test_a_server_echoing_the_token_does_not_put_it_in_the_result(
        peer: HostileImap, caplog: pytest.LogCaptureFixture) -> None:
    peer.script["AUTHENTICATE"] = Sasl(
        reply=b"{tag} NO invalid credentials " + ENCODED.encode() + b" for Bearer "
              + TOKEN.encode() + b"\r\n")
    result = await check(xoauth2_mailbox(peer))
    assert (result.failure_class, result.step) == (FailureClass.AUTH, "login")
    assert result.error is not None and "invalid credentials *** for Bearer ***" in result.error
    assert_token_absent(result.model_dump_json())


async def test_a_server_without_xoauth2_is_auth_and_gets_no_token(peer: HostileImap) -> None:
    peer.script["CAPABILITY"] = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
    result = await check(xoauth2_mailbox(peer))
    assert (result.failure_class, result.step) == (FailureClass.AUTH, "login")
    assert result.error == "mailbox oauth (imap) at login: server does not offer AUTH=XOAUTH2"
    assert "AUTHENTICATE" not in peer.seen and peer.sasl == []


async def test_the_token_is_not_in_the_config_repr(peer: HostileImap) -> None:
    mailbox = xoauth2_mailbox(peer)
    assert_token_absent(repr(mailbox), repr(Config(mailboxes=(mailbox,))),
                        mailbox.model_dump_json())
