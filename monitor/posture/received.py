"""What an arrived seed message tells posture: the provider's sending IP, from the
Received chain, and the From domain.

Received headers are read top down (each hop prepends its own, RFC 5321 §4.4).
The first one whose `from` clause names a public address is the receiving side's
record of who connected: the provider's sending IP. Hops inside the receiver
(private or loopback addresses) are skipped; if every hop is private (a test
stack, a relay on the same network) the topmost one is used, and said so.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

MAX_HEADER_BYTES = 256 * 1024
# `from host (helo [192.0.2.1])`, `from host (rdns [192.0.2.1]) by ...`, IPv6:... inside [].
_FROM_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
# A receiver's own hops: RFC 1918, loopback, link-local, CGNAT (RFC 6598), ULA. Not
# `ipaddress.is_global`, which also calls the documentation ranges non-global.
_INTERNAL = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
    "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10"))


@dataclass(frozen=True)
class Sender:
    ip: str | None
    received: str | None  # the Received header it came from
    public: bool = True  # False: no public hop was found, this is the topmost private one


def headers(raw: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(raw[:MAX_HEADER_BYTES])


def sending_ip(raw: bytes) -> Sender:
    first: Sender | None = None
    for header in headers(raw).get_all("Received") or []:
        text = " ".join(str(header).split())
        clause = text.split(" by ", 1)[0] if text.lower().startswith("from ") else ""
        for candidate in _FROM_IP.findall(clause):
            try:
                ip = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if not any(ip in net for net in _INTERNAL if net.version == ip.version):
                return Sender(str(ip), text)
            first = first or Sender(str(ip), text, public=False)
    return first or Sender(None, None)


def from_domain(raw: bytes) -> str | None:
    """The RFC 5322 From address's domain, which DMARC aligns with."""
    address = parseaddr(str(headers(raw).get("From") or ""))[1]
    return address.rpartition("@")[2].lower() or None if "@" in address else None
