"""The test message a `send` probe carries (RFC 5322, built by the stdlib).

Building an EmailMessage with the SMTP policy costs about 0.9 ms (header
parsing and folding) — a third of a whole probe against a local server — so
the message is built once per (sender, recipients, subject, content) with
fixed-width placeholders, and each send substitutes its token and date.

That substitution works on the wire bytes, so the placeholders must appear
there verbatim: both bodies are always quoted-printable. Left to choose, the
stdlib base64-encodes a body with long non-ASCII lines (a campaign in Cyrillic,
say), hiding the placeholder; QP leaves the token line — short, ASCII, on a
line of its own — as it is, and also spares the message any need for 8BITMIME.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from cachetools import LRUCache

from monitor.results import TOKEN_HEADER

_TOKEN_HEX = 24
# Same width as a real token and date, so substitution never changes header folding.
_TOKEN_SLOT = "dm-" + "x" * _TOKEN_HEX
_DATE_SLOT = "Thu, 01 Jan 1970 00:00:00 +0000"  # a valid date: the header is parsed

DEFAULT_TEXT = ("This is an automated delivery probe sent by Delivery Monitor.\n"
                "It is deleted by the monitor when found; no action is needed.\n")


@dataclass(frozen=True)
class MessageSpec:
    """What to send; a pre-campaign check fills in the campaign's subject and bodies."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str = DEFAULT_TEXT
    html: str | None = None


def new_token() -> str:
    """Unique per send; the receive side matches on it (header and body)."""
    return "dm-" + secrets.token_hex(_TOKEN_HEX // 2)


# Bounded by bytes: a campaign's HTML may be 1 MB, and an entry count would let 256
# of them pin 256 MB. A template larger than the whole cache is built every time.
TEMPLATE_CACHE_BYTES = 8 * 1024 * 1024
_templates: LRUCache[tuple[MessageSpec, str], bytes] = LRUCache(
    maxsize=TEMPLATE_CACHE_BYTES, getsizeof=len)
_templates_lock = threading.Lock()


def _template(spec: MessageSpec, helo: str) -> bytes:
    key = (spec, helo)
    with _templates_lock:
        cached = _templates.get(key)
    if cached is not None:
        return cached
    wire = _build_template(spec, helo)
    if len(wire) <= TEMPLATE_CACHE_BYTES:
        with _templates_lock:
            _templates[key] = wire
    return wire


def _build_template(spec: MessageSpec, helo: str) -> bytes:
    message = EmailMessage(policy=SMTP)
    domain = spec.sender.rpartition("@")[2] or helo
    message["Date"] = _DATE_SLOT
    message["Message-ID"] = f"<{_TOKEN_SLOT}@{domain}>"
    message["From"] = spec.sender
    message["To"] = ", ".join(spec.recipients)
    message["Subject"] = spec.subject
    message[TOKEN_HEADER] = _TOKEN_SLOT
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to probes
    # The token goes in the body too: some inbound-parse services drop custom headers.
    message.set_content(f"{spec.text.rstrip()}\n\nDelivery Monitor token: {_TOKEN_SLOT}\n",
                        cte="quoted-printable")
    if spec.html is not None:
        message.add_alternative(
            f"{spec.html}\n<!-- Delivery Monitor token: {_TOKEN_SLOT} -->\n", subtype="html",
            cte="quoted-printable")
    wire = message.as_bytes(policy=SMTP)
    # Message-ID, the token header and each body: every one must be substituted.
    if wire.count(_TOKEN_SLOT.encode()) < 3 + (spec.html is not None):
        raise RuntimeError("the token placeholder did not survive MIME encoding")
    return wire


def build_message(spec: MessageSpec, *, token: str, now: datetime,
                  helo: str) -> tuple[bytes, str]:
    """Return (wire bytes with CRLF line endings, Message-ID)."""
    if len(token) != len(_TOKEN_SLOT):
        raise ValueError("token must come from new_token()")
    wire = _template(spec, helo)
    domain = spec.sender.rpartition("@")[2] or helo
    wire = wire.replace(_TOKEN_SLOT.encode(), token.encode()).replace(
        _DATE_SLOT.encode(), format_datetime(now).encode(), 1)
    return wire, f"<{token}@{domain}>"
