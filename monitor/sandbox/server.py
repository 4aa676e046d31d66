"""The built-in sandbox SMTP server: aiosmtpd with STARTTLS, AUTH and a Maildir.

`monitor demo` probes it, and tests use it as a well-behaved peer. Faults can be
switched on at run time (`sandbox.faults["rcpt"] = "451 4.3.0 try later"`) so
the demo can show a failure and a recovery without touching a real server.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from monitor.sandbox.certs import CertificateFiles, make_certificates

FAULT_POINTS = ("mail", "rcpt", "data")



class _DropLoginDataNotice(logging.Filter):
    """aiosmtpd logs a deprecation of its own Session.login_data on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Session.login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNotice())


@dataclass
class SandboxHandler:
    maildir: Path | None
    faults: dict[str, str] = field(default_factory=dict)
    received: int = 0

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if fault := self.faults.get("mail"):
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if fault := self.faults.get("rcpt"):
            return fault
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if fault := self.faults.get("data"):
            return fault
        queue_id = secrets.token_hex(5).upper()
        if self.maildir is not None and isinstance(envelope.original_content, bytes):
            content = envelope.original_content
            await asyncio.to_thread(_store, self.maildir, content)
        self.received += 1
        return f"250 2.0.0 Ok: queued as {queue_id}"


def _store(path: Path, content: bytes) -> None:
    mailbox.Maildir(path, create=True).add(content)


@dataclass
class Sandbox:
    """A running sandbox server on loopback; `start()` picks a free port."""

    directory: Path
    username: str = "demo"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    host: str = "127.0.0.1"
    port: int = 0
    certificates: CertificateFiles | None = None
    offer_starttls: bool = True
    handler: SandboxHandler | None = None
    _server: asyncio.Server | None = None

    @property
    def faults(self) -> dict[str, str]:
        assert self.handler is not None, "start() first"
        return self.handler.faults

    @property
    def maildir(self) -> Path:
        return self.directory / "Maildir"

    async def start(self) -> Sandbox:
        if self.certificates is None:
            self.certificates = await asyncio.to_thread(
                make_certificates, self.directory / "tls")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificates.cert_file, self.certificates.key_file)
        # Created up front: two first deliveries at once would race to create it.
        self.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(mailbox.Maildir, self.maildir, create=True)
        self.handler = SandboxHandler(self.maildir)
        handler = self.handler

        def factory() -> SMTP:
            # Read per connection, so a test can withdraw STARTTLS while running.
            tls = context if self.offer_starttls else None
            secure = tls is not None
            return SMTP(handler, hostname="sandbox.localhost", ident="Delivery Monitor sandbox",
                        tls_context=tls, require_starttls=secure, auth_required=secure,
                        auth_require_tls=secure, authenticator=self._authenticate)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and secrets.compare_digest(auth_data.login, self.username.encode())
              and secrets.compare_digest(auth_data.password, self.password.encode()))
        return AuthResult(success=ok, handled=False)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
