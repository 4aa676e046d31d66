"""Take our own secrets out of text that someone else wrote or will read.

Servers and subscribers echo what we sent them (a 535 that quotes the AUTH
line, an error page that repeats the URL); whatever we record or log of their
replies passes through here first.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

REDACTED = "[redacted]"


def redact(text: str, needles: Iterable[str]) -> str:
    """`text` with every needle replaced, longest first so a part never shows."""
    for needle in sorted({n for n in needles if n}, key=len, reverse=True):
        text = text.replace(needle, REDACTED)
    return text


def auth_needles(username: str, secret: str) -> tuple[str, ...]:
    """The secret as we might have sent it in any SMTP AUTH exchange (RFC 4954).

    PLAIN sends base64("\\0user\\0secret"), LOGIN base64(secret) on its own
    line, XOAUTH2 base64("user=…\\x01auth=Bearer secret\\x01\\x01"). A server
    may echo any of them, with or without the base64 padding. Forms shorter
    than 4 characters are left out: they would blank ordinary words.
    """
    forms = [secret.encode(), b"\0" + username.encode() + b"\0" + secret.encode(),
             b"user=" + username.encode() + b"\x01auth=Bearer " + secret.encode() + b"\x01\x01"]
    needles = [secret]
    for form in forms:
        encoded = base64.b64encode(form).decode()
        needles += [encoded, encoded.rstrip("=")]
    return tuple(n for n in needles if len(n) >= 4)
