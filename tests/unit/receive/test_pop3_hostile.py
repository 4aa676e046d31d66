"""The POP3 backend against a misbehaving server: classified failures, bounded time,
and no message deleted without being reported."""

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
from tests.unit.receive.hostile_pop3 import CAPA, DROP, HANG, PROBE, STLS, HostilePop3

OPTIONS = ReceiveOptions(op_timeout=0.5, scan_timeout=3.0)
BOUND = 2.0  # seconds any failure below must take at most
# For servers that answer every read in time, for ever: only scan_timeout ends those.
SHORT = ReceiveOptions(op_timeout=0.5, scan_timeout=1.0)
SHORT_BOUND = SHORT.scan_timeout + 0.5
PASSWORD = "secret-pw"
MEGABYTE_LINE = b"+OK " + b"x" * 1_000_000 + b"\r\n"
NO_STLS = CAPA.replace(b"STLS\r\n", b"")


@pytest.fixture
async def peer() -> AsyncIterator[HostilePop3]:
    server = await HostilePop3().start()
    yield server
    await server.stop()


async def check(server: HostilePop3, token: str = "dm-x", options: ReceiveOptions = OPTIONS,
                bound: float = BOUND, **fields: Any) -> ReceiveResult:
    mailbox = MailboxConfig.model_validate({
        "name": "hostile", "address": "seed@example.test", "kind": "pop3", "host": "127.0.0.1",
        "port": server.port, "tls": "none", "username": "seed", "password": PASSWORD,
        "deliver_within": "1h", **fields})
    now = datetime.now(UTC)
    started = time.monotonic()
    [result] = await poll_pending(Config(mailboxes=(mailbox,)),
                                   [pending(token, "hostile", now, timedelta(hours=1))], now,
                                   options=options)
    assert time.monotonic() - started < bound, "not bounded"
    assert PASSWORD not in result.model_dump_json()
    return result


def failed(result: ReceiveResult) -> tuple[ReceiveStatus, FailureClass | None, str | None]:
    return result.status, result.failure_class, result.step


async def test_a_well_behaved_script_finds_and_deletes_the_message(peer: HostilePop3) -> None:
    peer.maildrop = [b"Subject: someone's mail\r\n", PROBE]
    result = await check(peer)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert (result.folder, result.placement, result.folder_known) == (
        "INBOX", Placement.INBOX, False)
    assert result.deleted and peer.maildrop == [b"Subject: someone's mail\r\n"]
    assert peer.seen == ["USER", "PASS", "STAT", "UIDL", "TOP", "TOP", "DELE", "QUIT"]


async def test_garbage_greeting_is_protocol(peer: HostilePop3) -> None:
    peer.greeting = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "connect")
    assert result.error is not None and "HTTP/1.1 400" in result.error


async def test_err_greeting_is_protocol_with_the_server_text(peer: HostilePop3) -> None:
    peer.greeting = b"-ERR too many connections from your host\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "connect")
    assert result.error is not None and "too many connections" in result.error
    assert peer.seen == []


async def test_silent_server_is_timeout_and_the_client_lets_go(peer: HostilePop3) -> None:
    peer.greeting = HANG
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TIMEOUT, "connect")
    await peer.hung_up()


@pytest.mark.parametrize(("command", "step", "tls"), [
    ("CAPA", "starttls", "starttls"), ("STLS", "starttls", "starttls"),
    ("USER", "login", "none"), ("PASS", "login", "none"),
    ("STAT", "stat", "none"), ("UIDL", "uidl", "none"), ("TOP", "fetch", "none"),
    ("DELE", "delete", "none")])
async def test_no_answer_to_a_command_is_timeout_at_its_step(
        peer: HostilePop3, command: str, step: str, tls: str) -> None:
    peer.script[command] = HANG
    result = await check(peer, tls=tls)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TIMEOUT, step)
    await peer.hung_up()
    assert peer.maildrop == [PROBE]  # no QUIT: nothing was deleted


@pytest.mark.parametrize(("command", "step", "tls"), [
    ("CAPA", "starttls", "starttls"), ("STLS", "starttls", "starttls"),
    ("USER", "login", "none"), ("PASS", "login", "none"),
    ("STAT", "stat", "none"), ("UIDL", "uidl", "none"), ("TOP", "fetch", "none"),
    ("DELE", "delete", "none")])
async def test_connection_dropped_at_a_command_is_network_at_its_step(
        peer: HostilePop3, command: str, step: str, tls: str) -> None:
    peer.script[command] = DROP
    result = await check(peer, tls=tls)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.NETWORK, step)
    assert peer.maildrop == [PROBE]


@pytest.mark.parametrize(("where", "step"), [("greeting", "connect"), ("USER", "login"),
                                             ("STAT", "stat"), ("UIDL", "uidl"),
                                             ("TOP", "fetch")])
async def test_a_megabyte_line_is_protocol(peer: HostilePop3, where: str, step: str) -> None:
    # poplib reads at most _MAXLINE (2048) bytes a line, then gives up on the stream.
    if where == "greeting":
        peer.greeting = MEGABYTE_LINE
    else:
        peer.script[where] = MEGABYTE_LINE
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, step)
    assert result.error is not None and "line too long" in result.error
    assert "DELE" not in peer.seen


async def test_a_megabyte_header_line_is_protocol(peer: HostilePop3) -> None:
    peer.script["TOP"] = b"+OK\r\nSubject: " + b"x" * 1_000_000 + b"\r\n\r\n.\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "fetch")


async def test_a_multiline_answer_left_unfinished_is_timeout(peer: HostilePop3) -> None:
    peer.script["TOP"] = b"+OK\r\nX-Delivery-Monitor-Token: dm-x\r\n\r\n"  # no "."
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TIMEOUT, "fetch")
    await peer.hung_up()
    assert peer.maildrop == [PROBE]


async def test_a_multiline_answer_cut_off_is_network(peer: HostilePop3) -> None:
    async def half_a_header(writer: asyncio.StreamWriter, line: bytes) -> bool:
        writer.write(b"+OK\r\nX-Delivery-Monitor-Token: dm")
        await writer.drain()
        return False  # and hang up

    peer.script["TOP"] = half_a_header
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.NETWORK, "fetch")


async def test_a_multiline_answer_that_never_ends_is_bounded(peer: HostilePop3) -> None:
    async def endless(writer: asyncio.StreamWriter, line: bytes) -> bool:
        writer.write(b"+OK\r\n")
        while True:  # header lines, quickly, for ever: no read ever times out
            writer.write(b"X-Filler: " + b"y" * 1000 + b"\r\n")
            await writer.drain()

    peer.script["TOP"] = endless
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "fetch")
    await peer.hung_up()


async def test_a_multiline_answer_trickling_for_ever_stops_the_thread(
        peer: HostilePop3) -> None:
    async def trickle(writer: asyncio.StreamWriter, line: bytes) -> bool:
        writer.write(b"+OK\r\n")
        while True:  # a line just inside op_timeout, for ever: no read ever times out
            writer.write(b"X-Filler: y\r\n")
            await writer.drain()
            await asyncio.sleep(SHORT.op_timeout / 5)

    peer.script["TOP"] = trickle
    result = await check(peer, options=SHORT, bound=SHORT_BOUND)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TIMEOUT, "fetch")
    await peer.hung_up(within=1.0)  # the abandoned thread stopped at the next line


async def test_login_refused_is_auth_and_the_password_stays_out(peer: HostilePop3) -> None:
    peer.script["PASS"] = b"-ERR [AUTH] invalid login\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.AUTH, "login")
    assert result.error is not None and "invalid login" in result.error


async def test_a_server_echoing_the_password_does_not_leak_it(peer: HostilePop3) -> None:
    peer.script["PASS"] = b"-ERR cannot parse: {line}\r\n"
    result = await check(peer)  # asserts the password is not in the result
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.AUTH, "login")
    assert result.error is not None and "cannot parse: PASS" in result.error


async def test_user_refused_is_auth(peer: HostilePop3) -> None:
    peer.script["USER"] = b"-ERR no such mailbox\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.AUTH, "login")
    assert "PASS" not in peer.seen


async def test_stls_not_offered_never_sends_the_password(peer: HostilePop3) -> None:
    peer.script["CAPA"] = NO_STLS
    result = await check(peer, tls="starttls")
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TLS, "starttls")
    assert "PASS" not in peer.seen and "USER" not in peer.seen


async def test_no_capa_at_all_is_stls_not_offered(peer: HostilePop3) -> None:
    peer.script["CAPA"] = b"-ERR unknown command\r\n"  # RFC 2449 is optional
    result = await check(peer, tls="starttls")
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TLS, "starttls")
    assert "PASS" not in peer.seen and "USER" not in peer.seen


async def test_stls_refused_is_tls(peer: HostilePop3) -> None:
    peer.script["STLS"] = b"-ERR not now\r\n"
    result = await check(peer, tls="starttls")
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TLS, "starttls")
    assert "PASS" not in peer.seen and "USER" not in peer.seen


async def test_implicit_tls_against_a_plaintext_server_is_tls(peer: HostilePop3) -> None:
    result = await check(peer, tls="implicit")
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TLS, "connect")


async def test_stls_with_an_untrusted_certificate_is_tls(
        peer: HostilePop3, server_ctx: ssl.SSLContext, good_certs: CertificateFiles) -> None:
    peer.tls = server_ctx
    peer.script["STLS"] = STLS
    result = await check(peer, tls="starttls")
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TLS, "starttls")
    assert result.error is not None and "unknown CA" in result.error
    assert "PASS" not in peer.seen and "USER" not in peer.seen

    peer.seen.clear()
    result = await check(peer, tls="starttls", ca_file=Path(good_certs.ca_file))
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert peer.seen.index("STLS") < peer.seen.index("USER")
    assert peer.maildrop == []


async def test_without_uidl_every_message_is_still_read(peer: HostilePop3) -> None:
    peer.maildrop = [PROBE, b"Subject: newer mail\r\n"]
    peer.script["UIDL"] = b"-ERR unknown command\r\n"  # UIDL is optional (RFC 1939 §7)
    result = await check(peer)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert peer.seen.count("TOP") == 2 and peer.maildrop == [b"Subject: newer mail\r\n"]


@pytest.mark.parametrize("answer", [
    b"+OK\r\n\x00\xff garbage (((\r\n: no name\r\nno colon at all\r\n.\r\n",
    b"+OK\r\n.\r\n",  # nothing at all
    b"+OK\r\nSubject: a probe without its token\r\n\r\n.\r\n"])
async def test_headers_without_a_token_are_not_a_probe(peer: HostilePop3, answer: bytes) -> None:
    peer.script["TOP"] = answer
    result = await check(peer)
    assert (result.status, result.error) == (ReceiveStatus.PENDING, None)
    assert "DELE" not in peer.seen and peer.maildrop == [PROBE]


async def test_garbage_instead_of_a_top_status_is_protocol(peer: HostilePop3) -> None:
    # Not "-ERR": the answer cannot be skipped, since what follows it is unknown. Skipped,
    # the rest of it would be read as the answer to the next TOP, of another message.
    peer.maildrop = [b"Subject: someone's mail\r\n", PROBE]
    peer.script["TOP"] = b"HTTP/1.1 200 OK\r\n+OK\r\nX-Delivery-Monitor-Token: dm-x\r\n.\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "fetch")
    assert peer.seen.count("TOP") == 1 and "DELE" not in peer.seen


async def test_stat_counting_more_than_top_can_fetch(peer: HostilePop3) -> None:
    peer.script["STAT"] = b"+OK 3 300\r\n"  # two of them are gone: TOP answers -ERR
    result = await check(peer)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert peer.seen.count("TOP") == 3 and peer.maildrop == []


async def test_stat_counting_fewer_than_there_are(peer: HostilePop3) -> None:
    peer.script["STAT"] = b"+OK 0 0\r\n"
    result = await check(peer)
    assert (result.status, result.error) == (ReceiveStatus.PENDING, None)
    assert "TOP" not in peer.seen and peer.maildrop == [PROBE]


async def test_stat_without_numbers_is_protocol(peer: HostilePop3) -> None:
    peer.script["STAT"] = b"+OK plenty\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "stat")


async def test_stat_claiming_a_billion_messages_is_cut_off_at_check_timeout(
        peer: HostilePop3) -> None:
    peer.script["STAT"] = b"+OK 1000000000 1\r\n"  # each TOP answers -ERR, quickly
    result = await check(peer, options=SHORT, bound=SHORT_BOUND)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.TIMEOUT, "fetch")
    await peer.hung_up()  # the abandoned thread stopped at its next checkpoint
    assert "DELE" not in peer.seen and peer.maildrop == [PROBE]


async def test_dele_refused_is_protocol_and_deletes_nothing(peer: HostilePop3) -> None:
    peer.maildrop = [PROBE, b"X-Delivery-Monitor-Token: dm-old\r\nDate: Sat, 1 Jan 2000 "
                            b"00:00:00 +0000\r\n"]  # a stale probe: swept first
    peer.script["DELE"] = b"-ERR maildrop is read-only\r\n"
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "delete")
    assert result.error is not None and "read-only" in result.error
    assert "QUIT" not in peer.seen and len(peer.maildrop) == 2

    del peer.script["DELE"]
    result = await check(peer)  # still there, so the next check finds it
    assert result.status is ReceiveStatus.ARRIVED and result.deleted, result.error
    assert peer.maildrop == []


async def test_second_dele_refused_undoes_the_first(peer: HostilePop3) -> None:
    peer.maildrop = [PROBE, PROBE]  # a duplicate: both go

    async def refuse_the_second(writer: asyncio.StreamWriter, line: bytes) -> bool:
        writer.write(b"-ERR locked\r\n" if peer.seen.count("DELE") > 1 else b"+OK\r\n")
        await writer.drain()
        return True

    peer.script["DELE"] = refuse_the_second
    result = await check(peer)
    assert failed(result) == (ReceiveStatus.ERROR, FailureClass.PROTOCOL, "delete")
    assert "QUIT" not in peer.seen and peer.maildrop == [PROBE, PROBE]


@pytest.mark.parametrize("then", [DROP, HANG])
async def test_quit_applied_but_unanswered_still_reports_the_message(
        peer: HostilePop3, then: str) -> None:
    async def apply_then_misbehave(writer: asyncio.StreamWriter, line: bytes) -> bool:
        peer.commit()  # the server entered UPDATE (RFC 1939 §6): the message is gone
        return then == HANG  # stay, answering nothing; or hang up

    peer.script["QUIT"] = apply_then_misbehave
    result = await check(peer)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert peer.maildrop == [] and not result.deleted  # unconfirmed, so not claimed
    assert any("QUIT" in note for note in result.notes)
    await peer.hung_up()


async def test_quit_refused_still_reports_the_message(peer: HostilePop3) -> None:
    peer.script["QUIT"] = b"-ERR some deleted messages not removed\r\n"
    result = await check(peer)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert not result.deleted and peer.maildrop == [PROBE]  # the server said so
    assert any("not removed" in note for note in result.notes)
