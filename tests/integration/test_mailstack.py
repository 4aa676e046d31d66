"""Proves the mail stack harness works, with nothing but the standard library.

If these fail, fix the harness (mailstack.py, stack/) before trusting any other
integration test.
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.integration.mailstack import MailStack

SEED = "seed@example.test"
SEED_PASSWORD = "seed-password"
DELIVERY_TIMEOUT = 20.0
POLL_INTERVAL = 0.1


def tls_context(stack: MailStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.ca_pem_path))


def make_message(to: str, *, junk: bool = False) -> tuple[EmailMessage, str]:
    """A message whose Subject carries a token unique to this call."""
    token = uuid.uuid4().hex
    message = EmailMessage()
    message["From"] = SEED
    message["To"] = to
    message["Subject"] = f"harness check {token}"
    if junk:
        message["X-Test-Junk"] = "yes"
    message.set_content("Sent by tests/integration/test_mailstack.py\n")
    return message, token


@contextlib.contextmanager
def submission(stack: MailStack) -> Iterator[smtplib.SMTP]:
    """An SMTP session on the submission port, already upgraded with STARTTLS."""
    with smtplib.SMTP(stack.host, stack.submission_port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.starttls(context=tls_context(stack))
        smtp.ehlo()
        yield smtp


def authenticate(smtp: smtplib.SMTP, mechanism: str, user: str, password: str) -> None:
    # smtplib.login() silently falls back to other mechanisms; name one instead.
    smtp.user, smtp.password = user, password
    authobject = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login}[mechanism]
    smtp.auth(mechanism, authobject)


def find_in_mailbox(
    stack: MailStack,
    folder: str,
    token: str,
    timeout: float = DELIVERY_TIMEOUT,
    user: str = SEED,
    password: str = SEED_PASSWORD,
) -> bool:
    """Poll `folder` over IMAPS until a message with `token` in its Subject shows up."""
    deadline = time.monotonic() + timeout
    with imaplib.IMAP4_SSL(
        stack.host, stack.imaps_port, ssl_context=tls_context(stack), timeout=10
    ) as imap:
        imap.login(user, password)
        while True:
            status, _ = imap.select(folder, readonly=True)
            assert status == "OK", f"cannot select {folder}"
            status, data = imap.search(None, "SUBJECT", f'"{token}"')
            if status == "OK" and data[0].split():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)


def greeting(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        return sock.makefile("rb").readline()


# SMTP -----------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_submission_starttls_auth_delivers_to_inbox(mailstack: MailStack, mechanism: str) -> None:
    message, token = make_message(SEED)
    with submission(mailstack) as smtp:
        assert smtp.sock is not None and isinstance(smtp.sock, ssl.SSLSocket)
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].upper().split())
        authenticate(smtp, mechanism, SEED, SEED_PASSWORD)
        smtp.send_message(message)

    assert find_in_mailbox(mailstack, "INBOX", token)
    assert mailstack.maildir_for(SEED).is_dir()


def test_junk_header_is_filed_into_junk(mailstack: MailStack) -> None:
    message, token = make_message(SEED, junk=True)
    with submission(mailstack) as smtp:
        authenticate(smtp, "PLAIN", SEED, SEED_PASSWORD)
        smtp.send_message(message)

    assert find_in_mailbox(mailstack, "Junk", token)
    assert not find_in_mailbox(mailstack, "INBOX", token, timeout=0)


def test_submission_refuses_auth_before_starttls(mailstack: MailStack) -> None:
    with smtplib.SMTP(mailstack.host, mailstack.submission_port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        code, reply = smtp.mail(SEED)
        assert code == 530, reply


def test_wrong_password_is_535_and_does_not_slow_the_next_login(mailstack: MailStack) -> None:
    with submission(mailstack) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            authenticate(smtp, "PLAIN", SEED, "not-the-password")
        assert failure.value.smtp_code == 535
        error = failure.value.smtp_error
        assert isinstance(error, bytes) and error.startswith(b"5.7.8"), error

        # dovecot's auth penalty would hold this one back for 2 s or more.
        started = time.monotonic()
        authenticate(smtp, "PLAIN", SEED, SEED_PASSWORD)
        assert time.monotonic() - started < 1.0


def test_smtps_implicit_tls(mailstack: MailStack) -> None:
    message, token = make_message(SEED)
    with smtplib.SMTP_SSL(
        mailstack.host, mailstack.smtps_port, context=tls_context(mailstack), timeout=10
    ) as smtp:
        authenticate(smtp, "PLAIN", SEED, SEED_PASSWORD)
        smtp.send_message(message)

    assert find_in_mailbox(mailstack, "INBOX", token)


def test_mx_port_takes_local_mail_without_auth_and_refuses_relay(mailstack: MailStack) -> None:
    message, token = make_message(SEED)
    with smtplib.SMTP(mailstack.host, mailstack.mx_port, timeout=10) as smtp:
        smtp.ehlo()
        code, reply = smtp.mail("someone@elsewhere.test")
        assert code == 250, reply
        code, reply = smtp.rcpt("someone@elsewhere.test")
        assert (code, reply[:5]) == (554, b"5.7.1"), reply
        code, reply = smtp.rcpt("not-a-user@example.test")
        assert (code, reply[:5]) == (550, b"5.1.1"), reply
        smtp.rset()
        smtp.send_message(message, from_addr="someone@elsewhere.test")

    assert find_in_mailbox(mailstack, "INBOX", token)


def test_recipient_access_map_controls_rcpt_replies(mailstack: MailStack) -> None:
    try:
        mailstack.set_recipient_access({"nobody@example.test": "550 5.1.1 no such user"})
        with submission(mailstack) as smtp:
            authenticate(smtp, "PLAIN", SEED, SEED_PASSWORD)
            smtp.mail(SEED)
            code, reply = smtp.rcpt("nobody@example.test")
        assert code == 550
        assert reply.startswith(b"5.1.1") and b"no such user" in reply

        mailstack.set_recipient_access({"nobody@example.test": "450 4.2.1 try later"})
        with submission(mailstack) as smtp:
            authenticate(smtp, "PLAIN", SEED, SEED_PASSWORD)
            smtp.mail(SEED)
            code, reply = smtp.rcpt("nobody@example.test")
        assert code == 450
        assert reply.startswith(b"4.2.1") and b"try later" in reply
    finally:
        mailstack.set_recipient_access({})


def test_stop_and_start_postfix(mailstack: MailStack) -> None:
    try:
        mailstack.stop_postfix()
        with pytest.raises(ConnectionRefusedError):
            greeting(mailstack.host, mailstack.submission_port)
    finally:
        mailstack.start_postfix()

    assert greeting(mailstack.host, mailstack.submission_port).startswith(b"220 ")
    message, token = make_message(SEED)
    with submission(mailstack) as smtp:
        authenticate(smtp, "PLAIN", SEED, SEED_PASSWORD)
        smtp.send_message(message)
    assert find_in_mailbox(mailstack, "INBOX", token)


def test_added_user_receives_mail(mailstack: MailStack) -> None:
    address, password = f"u{uuid.uuid4().hex[:8]}@example.test", "fresh-password"
    mailstack.add_user(address, password)
    message, token = make_message(address)
    with submission(mailstack) as smtp:
        authenticate(smtp, "LOGIN", address, password)
        smtp.send_message(message)
    assert find_in_mailbox(mailstack, "INBOX", token, user=address, password=password)


# IMAP and POP3 -----------------------------------------------------------------


def test_imap_starttls_login(mailstack: MailStack) -> None:
    with imaplib.IMAP4(mailstack.host, mailstack.imap_port, timeout=10) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl_context=tls_context(mailstack))
        login_status, _ = imap.login(SEED, SEED_PASSWORD)
        assert login_status == "OK"
        list_status, folders = imap.list()
        assert list_status == "OK"
        assert any(b"\\Junk" in line and b"Junk" in line for line in folders if line)


def test_imaps_login(mailstack: MailStack) -> None:
    with imaplib.IMAP4_SSL(
        mailstack.host, mailstack.imaps_port, ssl_context=tls_context(mailstack), timeout=10
    ) as imap:
        status, _ = imap.login(SEED, SEED_PASSWORD)
        assert status == "OK"


def test_pop3_stls_login(mailstack: MailStack) -> None:
    pop = poplib.POP3(mailstack.host, mailstack.pop3_port, timeout=10)
    try:
        pop.stls(context=tls_context(mailstack))
        pop.user(SEED)
        assert pop.pass_(SEED_PASSWORD).startswith(b"+OK")
        pop.stat()
    finally:
        pop.quit()


def test_pop3s_login(mailstack: MailStack) -> None:
    pop = poplib.POP3_SSL(
        mailstack.host, mailstack.pop3s_port, context=tls_context(mailstack), timeout=10
    )
    try:
        pop.user(SEED)
        assert pop.pass_(SEED_PASSWORD).startswith(b"+OK")
        pop.stat()
    finally:
        pop.quit()


def test_certificates_verify_against_the_ca(mailstack: MailStack) -> None:
    context = tls_context(mailstack)
    with (
        socket.create_connection((mailstack.host, mailstack.imaps_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    with (
        socket.create_connection((mailstack.host, mailstack.imaps_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
