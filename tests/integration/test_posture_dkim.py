"""DKIM as received: a seed message signed here (dkimpy, 1024- and 2048-bit keys), sent
through postfix submission to dovecot, fetched whole by our IMAP and Maildir readers, and
verified by us with the keys on the loopback DNS server."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime, timedelta

import dkim
import pytest

from monitor.config import Config
from monitor.posture import dkim as posture_dkim
from monitor.posture.finding import Severity
from monitor.posture.received import sending_ip
from monitor.posture.resolver import Resolver
from monitor.probe.message import TOKEN_HEADER, new_token
from monitor.receive import PendingToken, ReceiveOptions, ReceiveStatus, wait_for_arrival
from tests.integration.mailstack import MailStack
from tests.integration.test_receive_dovecot import SEED, SEED_PASSWORD, mailbox
from tests.unit.checks.dnsserver import DnsServer
from tests.unit.posture.signing import rsa_key

DOMAIN = "example.test"


def signed(bits: int, token: str) -> bytes:
    raw = (f"From: Campaign <{SEED}>\r\nTo: {SEED}\r\nSubject: posture seed {bits}\r\n"
           f"Date: Tue, 01 Dec 2026 23:00:00 +0000\r\nMessage-ID: <{token}@{DOMAIN}>\r\n"
           f"{TOKEN_HEADER}: {token}\r\n\r\nHello seeds, signed with {bits} bits.\r\n"
           ).encode()
    return dkim.sign(raw, f"s{bits}".encode(), DOMAIN.encode(), rsa_key(bits).private_pem,
                     include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + raw


@pytest.mark.parametrize("kind", ["imap", "maildir"])
@pytest.mark.parametrize("bits", [1024, 2048])
async def test_a_signed_seed_through_postfix_verifies(mailstack: MailStack, kind: str,
                                                      bits: int) -> None:
    token = new_token()
    raw = signed(bits, token)

    def send() -> datetime:
        with smtplib.SMTP(mailstack.host, mailstack.submission_port, timeout=10) as smtp:
            smtp.starttls(context=mailstack.client_ssl_context())
            smtp.login(SEED, SEED_PASSWORD)
            smtp.sendmail(SEED, [SEED], raw)
        return datetime.now(UTC)

    accepted_at = await asyncio.to_thread(send)
    box = mailbox(mailstack, kind)
    pending = PendingToken(token=token, run_id="r", provider="postfix", mailbox=box.name,
                           accepted_at=accepted_at, deadline=accepted_at + timedelta(seconds=20))
    result = await wait_for_arrival(Config(mailboxes=(box,)), pending,
                                    options=ReceiveOptions(keep_message=True))
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert result.message is not None and b"Hello seeds" in result.message
    assert result.message.count(b"Received:") >= 2  # postfix's and dovecot's hops
    records = {(f"s{bits}._domainkey.{DOMAIN}", "TXT"): [rsa_key(bits).record()]}
    async with DnsServer(records) as dns:
        found = await posture_dkim.check(result.message, Resolver(dns.address))
    ids = {f.id: f.severity for f in found}
    expected = {"dkim.ok": Severity.INFO}
    if bits == 1024:
        expected["dkim.key_too_short"] = Severity.WARNING
    assert ids == expected, [f.message for f in found]
    assert sending_ip(result.message).ip is not None  # the submission client, on loopback
