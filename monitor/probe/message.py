"""The test message a `send` probe carries (RFC 5322, built by the stdlib)."""

from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

TOKEN_HEADER = "X-Delivery-Monitor-Token"


def new_token() -> str:
    """Unique per send; the receive side matches on it (header and body)."""
    return "dm-" + secrets.token_hex(12)


def build_message(*, sender: str, recipients: list[str], subject: str, token: str,
                  now: datetime, helo: str) -> tuple[bytes, str]:
    """Return (wire bytes with CRLF line endings, Message-ID)."""
    message = EmailMessage(policy=SMTP)
    domain = sender.rpartition("@")[2] or helo
    message_id = f"<{token}@{domain}>"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message[TOKEN_HEADER] = token
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to probes
    message.set_content(
        "This is an automated delivery probe sent by Delivery Monitor.\n"
        f"Token: {token}\n"
        "It is deleted by the monitor when found; no action is needed.\n"
    )
    return message.as_bytes(policy=SMTP), message_id
