"""Egress safety: refuse destinations that would turn webhooks into an SSRF tool.

A subscriber chooses the URL we POST to, so without a check anyone who can add a
subscription can make the monitor call its own admin endpoints, the database, or the
cloud metadata service (the Standard Webhooks spec, "Server side request forgery").

`vet_destination` refuses, unless the settings allow it (DESIGN.md:
`allow_private_destinations`, `allow_http`):

- a scheme other than https (http only when allowed; nothing else, ever);
- credentials in the URL (they would end up in logs; use the secret instead);
- a host whose addresses, *any* of them, are loopback, private (RFC 1918, RFC 4193 ULA),
  link-local, shared (RFC 6598), reserved or otherwise not globally routable.

An IPv6 address that carries an IPv4 one is judged by that IPv4 address too: 6to4
(2002::/16, RFC 3056), Teredo (2001::/32, RFC 4380: server and client), IPv4-mapped
(::ffff:0:0/96), NAT64's well-known prefix (64:ff9b::/96, RFC 6052) and the deprecated
IPv4-compatible form (::/96). A 6to4 relay or NAT64 gateway would forward
`2002:7f00:1::` or `64:ff9b::a9fe:a9fe` to 127.0.0.1 or the metadata service.

Even with `allow_private`, three kinds stay refused: the cloud metadata addresses, the
unspecified address (0.0.0.0 connects to this host) and multicast. No webhook receiver
lives there, and the metadata service hands out credentials.

Known gap: the check resolves the name, and the HTTP client resolves it again when it
connects; a DNS answer that changes in between (rebinding) is not caught here. Route
egress through a filtering proxy (smokescreen) or a locked-down subnet as well.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from monitor.webhooks.errors import EgressReason, EgressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# AWS/GCP/Azure/OpenStack (169.254.169.254), AWS IPv6 IMDS, Alibaba Cloud, Oracle Cloud.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1, the well-known prefix
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1, deprecated
_ALWAYS_REFUSED = frozenset(
    {EgressReason.METADATA, EgressReason.UNSPECIFIED, EgressReason.MULTICAST})


def classify_address(address: IPAddress) -> EgressReason | None:
    """Why an address is not a public destination, or None when it is one."""
    refusal = _refusal(address)
    return refusal[0] if refusal else None


def _refusal(address: IPAddress) -> tuple[EgressReason, IPAddress] | None:
    """The reason and the address it applies to: `address`, or an IPv4 one it embeds.
    A reason that stays refused even with allow_private wins over the others."""
    found = [(reason, a) for a in _judged(address) if (reason := _classify_one(a))]
    return next((f for f in found if f[0] in _ALWAYS_REFUSED), found[0] if found else None)


def _judged(address: IPAddress) -> list[IPAddress]:
    """The addresses to judge: the embedded IPv4 ones first (the more telling message)."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 *is* 127.0.0.1
        return [address.ipv4_mapped]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _NAT64:  # a translation of the IPv4 address, nothing more
        return [low32]
    if address.sixtofour is not None:
        return [address.sixtofour, address]
    if address.teredo is not None:
        return [*address.teredo, address]  # (server, client), client already un-XORed
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
        return [low32, address]
    return [address]


def _classify_one(address: IPAddress) -> EgressReason | None:
    checks = (
        (address in METADATA_ADDRESSES, EgressReason.METADATA),
        (address.is_unspecified, EgressReason.UNSPECIFIED),
        (address.is_multicast, EgressReason.MULTICAST),
        (address.is_loopback, EgressReason.LOOPBACK),
        (address.is_link_local, EgressReason.LINK_LOCAL),
        (address.is_reserved, EgressReason.RESERVED),
        (address.is_private, EgressReason.PRIVATE),
        # What remains: shared address space 100.64/10 and friends.
        (not address.is_global, EgressReason.NOT_GLOBAL),
    )
    return next((reason for hit, reason in checks if hit), None)


def host_of(url: str) -> str:
    """The URL's host for messages and logs: never the path (Slack puts its token there)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


RESOLVE_TIMEOUT = 5.0


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to. Literal addresses are not looked up."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        # getaddrinfo runs in a thread with the system's own, long timeouts: bound it.
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise EgressRefused(EgressReason.UNRESOLVABLE,
                            f"cannot resolve {host}: no answer in {RESOLVE_TIMEOUT:g} s",
                            permanent=False) from None
    except (socket.gaierror, UnicodeError) as exc:
        # Could be a passing DNS failure: not permanent, the worker retries.
        raise EgressRefused(EgressReason.UNRESOLVABLE, f"cannot resolve {host}: {exc}",
                            permanent=False) from None
    # sockaddr[0] may carry an IPv6 zone ("fe80::1%eth0"): drop it before parsing.
    return sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos},
                  key=str)


async def vet_destination(url: str, *, allow_private: bool, allow_http: bool) -> None:
    """Raise EgressRefused unless `url` is a destination we may POST webhooks to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressRefused(EgressReason.NO_HOST, f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise EgressRefused(EgressReason.SCHEME, f"scheme {scheme or 'missing'!r}: use https")
    if scheme == "http" and not allow_http:
        raise EgressRefused(EgressReason.SCHEME,
                            f"http://{parts.hostname} is not encrypted: use https")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused(EgressReason.CREDENTIALS,
                            "credentials in the URL are not allowed (use the signing secret)")
    host = parts.hostname
    if not host:
        raise EgressRefused(EgressReason.NO_HOST, "the URL has no host")
    for address in await resolve(host, port or (443 if scheme == "https" else 80)):
        refusal = _refusal(address)
        if refusal is None or (allow_private and refusal[0] not in _ALWAYS_REFUSED):
            continue
        reason, culprit = refusal
        hint = "" if reason in _ALWAYS_REFUSED else (
            " (set settings.allow_private_destinations to allow it)")
        name = host if host == str(address) else f"{host} ({address})"
        kind = f"a {reason.value.replace('_', '-')} address"
        what = f"embeds {culprit}, {kind}" if culprit != address else f"is {kind}"
        raise EgressRefused(reason, f"{name} {what}{hint}")
