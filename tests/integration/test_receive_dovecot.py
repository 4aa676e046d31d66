"""The receive side against Debian's dovecot, mail delivered by the local postfix.

IMAP (STARTTLS, implicit TLS), POP3 (STLS, implicit TLS) and the Maildir dovecot
writes: arrival found and deleted, latency recorded, the Sieve-filed Junk case,
classified mailbox failures, a message that never arrives, and the sweep.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from monitor.config import Config, MailboxConfig, ProviderConfig
from monitor.probe import run_probe
from monitor.probe.message import TOKEN_HEADER, new_token
from monitor.probe.result import FailureClass
from monitor.receive import (
    PendingToken,
    Placement,
    ReceiveOptions,
    ReceiveStatus,
    pending_tokens,
    poll_pending,
    wait_for_arrival,
)
from tests.integration.mailstack import MailStack

SEED = "seed@example.test"
SEED_PASSWORD = "seed-password"
# (kind, tls) -> the MailStack attribute holding its port
PORTS = {("imap", "starttls"): "imap_port", ("imap", "implicit"): "imaps_port",
         ("pop3", "starttls"): "pop3_port", ("pop3", "implicit"): "pop3s_port"}


def mailbox(stack: MailStack, kind: str, tls: str = "implicit", **overrides: Any) -> MailboxConfig:
    fields: dict[str, Any] = {"name": f"seed-{kind}-{tls}", "address": SEED, "kind": kind,
                              "deliver_within": "20s"}
    if kind == "maildir":
        fields["path"] = stack.maildir_for(SEED)
    else:
        fields.update(host=stack.host, port=getattr(stack, PORTS[(kind, tls)]), tls=tls,
                      ca_file=stack.ca_pem_path, username=SEED, password=SEED_PASSWORD)
    fields.update(overrides)
    return MailboxConfig.model_validate(fields)


def config_for(stack: MailStack, *boxes: MailboxConfig, **provider: Any) -> Config:
    fields: dict[str, Any] = {
        "name": "postfix", "host": stack.host, "port": stack.submission_port, "tls": "starttls",
        "mode": "send", "ca_file": stack.ca_pem_path, "helo": "probe.example.test",
        "from": SEED, "to": [b.name for b in boxes],
        "auth": {"username": SEED, "password": SEED_PASSWORD}, "timeout": "20s",
        "step_timeout": "5s", **provider}
    return Config(providers=(ProviderConfig.model_validate(fields),), mailboxes=boxes)


async def send_probe(config: Config) -> list[PendingToken]:
    """A real probe through postfix submission; its pending tokens."""
    result = await run_probe(config.providers[0], config)
    assert result.ok, result.failure
    return pending_tokens(result, config)


async def send_marked(stack: MailStack, *, junk: bool,
                      token: str | None = None) -> tuple[str, datetime]:
    """A message with the token header and, for the Sieve rule, `X-Test-Junk: yes`."""
    token = token or new_token()
    message = EmailMessage()
    message["From"] = message["To"] = SEED
    message["Subject"] = "receive-side test"
    message[TOKEN_HEADER] = token
    if junk:
        message["X-Test-Junk"] = "yes"
    message.set_content(f"Token: {token}\n")

    def send() -> datetime:
        with smtplib.SMTP(stack.host, stack.submission_port, timeout=10) as smtp:
            smtp.starttls(context=stack.client_ssl_context())
            smtp.login(SEED, SEED_PASSWORD)
            smtp.send_message(message)
        return datetime.now(UTC)  # DATA accepted: send_message returned after the 250

    return token, await asyncio.to_thread(send)


def files_with(stack: MailStack, token: str) -> list[Path]:
    """Message files anywhere in the seed Maildir (all folders) carrying `token`."""
    root = stack.maildir_for(SEED)
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name in ("new", "cur")
            and token.encode() in p.read_bytes()]


BACKENDS = [("imap", "starttls"), ("imap", "implicit"), ("pop3", "starttls"),
            ("pop3", "implicit"), ("maildir", "-")]


@pytest.mark.parametrize(("kind", "tls"), BACKENDS)
async def test_probe_message_found_measured_and_deleted(mailstack: MailStack, kind: str,
                                                        tls: str) -> None:
    config = config_for(mailstack, mailbox(mailstack, kind, tls))
    [pending] = await send_probe(config)
    result = await wait_for_arrival(config, pending)
    assert result.status is ReceiveStatus.ARRIVED and result.ok, result.error
    assert (result.folder, result.placement, result.deleted) == ("INBOX", Placement.INBOX, True)
    assert result.folder_known is (kind != "pop3")
    assert result.received_at is not None  # dovecot's LMTP Received header
    assert result.seen_at is not None and result.seen_at >= pending.accepted_at
    assert result.latency_ms is not None and 0 <= result.latency_ms <= result.seen_latency_ms
    assert result.seen_latency_ms is not None and 0 < result.seen_latency_ms < 20_000
    assert files_with(mailstack, pending.token) == []


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_sieve_filed_message_is_reported_junk(mailstack: MailStack, tls: str) -> None:
    box = mailbox(mailstack, "imap", tls)
    token, accepted_at = await send_marked(mailstack, junk=True)
    pending = PendingToken(token=token, run_id="r", provider="postfix", mailbox=box.name,
                           accepted_at=accepted_at, deadline=accepted_at + timedelta(seconds=20))
    result = await wait_for_arrival(Config(mailboxes=(box,)), pending)
    assert result.status is ReceiveStatus.ARRIVED, result.error
    assert (result.folder, result.placement) == ("Junk", Placement.JUNK)
    assert result.arrived and not result.ok and result.failure_class is FailureClass.DELIVERY
    assert result.diagnosis is not None and "junk folder" in result.diagnosis.summary
    assert files_with(mailstack, token) == []


async def test_pop3_cannot_see_junk_and_says_so(mailstack: MailStack) -> None:
    pop3 = mailbox(mailstack, "pop3", "implicit", deliver_within="2s")
    token, accepted_at = await send_marked(mailstack, junk=True)
    pending = PendingToken(token=token, run_id="r", provider="postfix", mailbox=pop3.name,
                           accepted_at=accepted_at, deadline=accepted_at + timedelta(seconds=2))
    result = await wait_for_arrival(Config(mailboxes=(pop3,)), pending)
    assert result.status is ReceiveStatus.MISSING
    assert any("POP3 has no folders" in note for note in result.notes)
    # Clean up through IMAP, which does see the Junk folder.
    imap = mailbox(mailstack, "imap", "implicit")
    [found] = await poll_pending(Config(mailboxes=(imap,)),
                                  [pending.model_copy(update={"mailbox": imap.name})])
    assert found.placement is Placement.JUNK


@pytest.mark.parametrize(("kind", "tls"), BACKENDS[:4])
async def test_wrong_mailbox_password_is_classified_auth(mailstack: MailStack, kind: str,
                                                         tls: str) -> None:
    box = mailbox(mailstack, kind, tls, password="not-the-password")
    now = datetime.now(UTC)
    pending = PendingToken(token=new_token(), run_id="r", provider="p", mailbox=box.name,
                           accepted_at=now, deadline=now + timedelta(minutes=5))
    started = time.monotonic()
    result = await wait_for_arrival(Config(mailboxes=(box,)), pending)
    assert time.monotonic() - started < 5  # not retried until the deadline
    assert (result.status, result.failure_class, result.step) == (
        ReceiveStatus.ERROR, FailureClass.AUTH, "login")
    assert "not-the-password" not in result.model_dump_json()


async def test_dovecot_stopped_is_classified_network(mailstack: MailStack) -> None:
    boxes = tuple(mailbox(mailstack, kind, tls) for kind, tls in BACKENDS[:4])
    now = datetime.now(UTC)
    pending = [PendingToken(token=new_token(), run_id="r", provider="p", mailbox=b.name,
                            accepted_at=now, deadline=now + timedelta(minutes=5))
               for b in boxes]
    mailstack.stop_dovecot()
    try:
        started = time.monotonic()
        results = await poll_pending(Config(mailboxes=boxes), pending)
        elapsed = time.monotonic() - started
    finally:
        mailstack.start_dovecot()
    assert elapsed < 5
    assert [(r.status, r.failure_class, r.step) for r in results] == [
        (ReceiveStatus.ERROR, FailureClass.NETWORK, "connect")] * 4
    assert all(r.error and "connection refused" in r.error for r in results)
    assert not any(r.settled for r in results)  # before the deadline: try again later


async def test_message_that_never_arrives_fails_delivery_at_the_deadline(
        mailstack: MailStack) -> None:
    box = mailbox(mailstack, "imap", "starttls", deliver_within="2s")
    now = datetime.now(UTC)
    pending = PendingToken(token=new_token(), run_id="r", provider="p", mailbox=box.name,
                           accepted_at=now, deadline=now + timedelta(seconds=2))
    result = await wait_for_arrival(Config(mailboxes=(box,)), pending)
    done = datetime.now(UTC)
    assert (result.status, result.failure_class) == (ReceiveStatus.MISSING, FailureClass.DELIVERY)
    assert result.checked_at >= pending.deadline  # the deciding check started at the deadline
    assert done - pending.deadline < timedelta(seconds=1)
    assert result.error is not None and "INBOX, Junk" in result.error


async def test_one_check_finds_the_tokens_of_several_earlier_sends(mailstack: MailStack) -> None:
    box = mailbox(mailstack, "imap", "implicit")
    config = config_for(mailstack, box)
    pending = [p for _ in range(3) for p in await send_probe(config)]
    deadline = time.monotonic() + 20
    results = await poll_pending(config, pending)
    while not all(r.arrived for r in results) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        waiting = [p for p, r in zip(pending, results, strict=True) if not r.arrived]
        again = {(r.token): r for r in await poll_pending(config, waiting)}
        results = [again.get(r.token, r) for r in results]
    assert [r.status for r in results] == [ReceiveStatus.ARRIVED] * 3
    assert all(files_with(mailstack, p.token) == [] for p in pending)


async def test_stale_probe_messages_are_swept_and_fresh_foreign_ones_kept(
        mailstack: MailStack) -> None:
    stale, fresh = new_token(), new_token()
    with IMAPClient(mailstack.host, port=mailstack.imaps_port,
                    ssl_context=mailstack.client_ssl_context()) as client:
        client.login(SEED, SEED_PASSWORD)
        for token, age in ((stale, timedelta(days=2)), (fresh, timedelta(minutes=5))):
            message = EmailMessage()
            message[TOKEN_HEADER] = token
            message["Subject"] = "left behind"
            message.set_content("x")
            client.append("INBOX", message.as_bytes(), msg_time=datetime.now(UTC) - age)
    box = mailbox(mailstack, "imap", "implicit")
    now = datetime.now(UTC)
    unrelated = PendingToken(token=new_token(), run_id="r", provider="p", mailbox=box.name,
                             accepted_at=now, deadline=now + timedelta(minutes=5))
    [result] = await poll_pending(Config(mailboxes=(box,)), [unrelated])
    assert result.status is ReceiveStatus.PENDING
    assert files_with(mailstack, stale) == []
    assert len(files_with(mailstack, fresh)) == 1
    # Tidy up the fresh one as its own sender would.
    await poll_pending(Config(mailboxes=(box,)),
                        [unrelated.model_copy(update={"token": fresh})])
    assert files_with(mailstack, fresh) == []


CROWD_HEADER = "X-Crowd-Test"


@pytest.mark.parametrize(("kind", "tls"), BACKENDS)
async def test_newer_other_mail_does_not_crowd_probe_messages_out(
        mailstack: MailStack, kind: str, tls: str) -> None:
    box = mailbox(mailstack, kind, tls)
    token = new_token()

    def send() -> datetime:
        with smtplib.SMTP(mailstack.host, mailstack.submission_port, timeout=10) as smtp:
            smtp.starttls(context=mailstack.client_ssl_context())
            smtp.login(SEED, SEED_PASSWORD)
            accepted = datetime.now(UTC)
            for n in range(31):  # the probe first, then the user's own mail
                message = EmailMessage()
                message["From"] = message["To"] = SEED
                message["Subject"] = f"crowd {n}"
                message[TOKEN_HEADER if n == 0 else CROWD_HEADER] = token
                message.set_content("hello\n")
                smtp.send_message(message)
                if n == 0:
                    accepted = datetime.now(UTC)
            return accepted

    accepted_at = await asyncio.to_thread(send)
    for _ in range(200):  # all 31 delivered, within 20 s
        if len(files_with(mailstack, token)) == 31:
            break
        await asyncio.sleep(0.1)
    pending = PendingToken(token=token, run_id="r", provider="p", mailbox=box.name,
                           accepted_at=accepted_at, deadline=accepted_at + timedelta(minutes=5))
    try:
        [result] = await poll_pending(Config(mailboxes=(box,)), [pending],
                                       options=ReceiveOptions(max_messages=5))
        assert result.status is ReceiveStatus.ARRIVED, result.error
        assert len(files_with(mailstack, token)) == 30  # only the probe was deleted
    finally:
        with IMAPClient(mailstack.host, port=mailstack.imaps_port,
                        ssl_context=mailstack.client_ssl_context()) as client:
            client.login(SEED, SEED_PASSWORD)
            client.select_folder("INBOX")
            client.delete_messages(client.search(["HEADER", CROWD_HEADER, token]))
            client.expunge()
    assert files_with(mailstack, token) == []


async def test_imap_xoauth2_with_a_token_file_against_dovecot(mailstack: MailStack,
                                                              tmp_path: Path) -> None:
    """dovecot 2.3 checks an XOAUTH2 bearer token against its passdb as a password
    (src/auth/mech-oauth2.c: auth_request_verify_plain), so with `xoauth2` in
    auth_mechanisms the stack's passwd-file takes the seed's password as its token.
    A refused token gets dovecot's JSON error challenge before the NO."""
    token_file = tmp_path / "seed-token"
    token_file.write_text(SEED_PASSWORD + "\n")
    box = mailbox(mailstack, "imap", "implicit", auth="xoauth2", password=None,
                  token_file=token_file)
    config = config_for(mailstack, box)
    [pending] = await send_probe(config)
    result = await wait_for_arrival(config, pending)
    assert result.status is ReceiveStatus.ARRIVED and result.deleted, result.error

    token_file.write_text("ya29.expired-token")  # the sidecar's next write, say
    [pending] = await send_probe(config)
    [refused] = await poll_pending(config, [pending])
    assert (refused.failure_class, refused.step) == (FailureClass.AUTH, "login")
    assert refused.error is not None and "ya29.expired-token" not in refused.model_dump_json()

    token_file.write_text(SEED_PASSWORD)  # re-read at the next scan: no restart needed
    result = await wait_for_arrival(config, pending)
    assert result.status is ReceiveStatus.ARRIVED and result.deleted, result.error
    assert files_with(mailstack, pending.token) == []
    # dovecot's own account: logins by XOAUTH2, and the refusal too (never LOGIN).
    for _ in range(50):  # the log process writes asynchronously
        log = mailstack.dovecot_log.read_text(errors="replace")
        if "auth failed" in log and "method=XOAUTH2" in log:
            break
        await asyncio.sleep(0.1)
    assert re.search(r"Login: user=<seed@example\.test>, method=XOAUTH2", log), log[-2000:]
    assert re.search(r"auth failed.*user=<seed@example\.test>, method=XOAUTH2", log), log[-2000:]
