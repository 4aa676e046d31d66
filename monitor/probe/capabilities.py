"""ESMTP extensions from an EHLO reply (RFC 5321 §4.1.1.1, RFC 1869)."""

from __future__ import annotations

import functools

from aiosmtplib.esmtp import parse_esmtp_extensions

from monitor.probe.result import Capabilities

# AUTH mechanisms by strength, strongest first: `auto` takes the first both sides
# support. XOAUTH2 is token-based and chosen only when explicitly configured.
MECHANISM_PREFERENCE = ("CRAM-MD5", "PLAIN", "LOGIN")


# A server answers EHLO with the same text every time; the model is frozen, so one
# parse per distinct reply is shared by every probe that sees it.
@functools.lru_cache(maxsize=128)
def parse_capabilities(ehlo_text: str, *, starttls_offered: bool = False) -> Capabilities:
    """Parse the text of a 250 EHLO reply (greeting line first, one keyword a line).

    `starttls_offered`: STARTTLS was advertised before TLS; it is never re-advertised
    inside TLS (RFC 3207 §4.2), so the EHLO after STARTTLS keeps that it was offered.
    """
    extensions, auth = parse_esmtp_extensions(ehlo_text)
    size: int | None = None
    size_param = extensions.get("size", "").strip()
    if size_param.isdigit():
        size = int(size_param)
    return Capabilities(
        esmtp=True,
        extensions=tuple(sorted(k.upper() for k in extensions)),
        size=size,
        auth_mechanisms=tuple(dict.fromkeys(m.upper() for m in auth)),
        starttls=starttls_offered or "starttls" in extensions,
        pipelining="pipelining" in extensions,
        eightbitmime="8bitmime" in extensions,
        smtputf8="smtputf8" in extensions,
        enhancedstatuscodes="enhancedstatuscodes" in extensions,
        chunking="chunking" in extensions,
        dsn="dsn" in extensions,
    )


HELO_ONLY = Capabilities(esmtp=False)
