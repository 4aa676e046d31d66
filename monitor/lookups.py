"""DNS lookups with dnspython, shared by the pre-campaign checks and posture.

`lookup` never raises: NXDOMAIN, an empty answer, SERVFAIL and timeouts become
a `Lookup` (records, or `missing`, or `error`). dnspython's exceptions are
translated here, once. The resolver is the system's (/etc/resolv.conf) unless a
nameserver (ip, port) is given, with no cache and bounded waits.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.resolver
from dns.rdtypes.ANY.TXT import TXT

DEFAULT_TIMEOUT = 2.0  # one query attempt
DEFAULT_LIFETIME = 5.0  # all attempts of one lookup


@dataclass(frozen=True)
class Lookup:
    """Records found, or why there are none: `missing` (NXDOMAIN/NODATA) or `error`."""

    records: tuple[object, ...] = ()
    missing: str | None = None
    error: str | None = None
    # The resolver set the AD bit: it validated the answer with DNSSEC (RFC 4035 §3.2.3).
    # Only as trustworthy as the path to the resolver; DANE (RFC 7672 §2.2) needs it.
    authentic: bool = False


def make_resolver(nameserver: tuple[str, int] | None, *, timeout: float,
                  lifetime: float) -> dns.asyncresolver.Resolver:
    """A resolver with bounded waits; raises NoResolverConfiguration without resolv.conf."""
    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.timeout = timeout
    resolver.lifetime = lifetime
    resolver.cache = None  # a check must see the records as they are now
    # AD in the query asks a validating resolver to say whether it validated (RFC 6840 §5.7).
    resolver.flags = dns.flags.RD | dns.flags.AD
    return resolver


async def lookup(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> Lookup:
    """One query; every dnspython outcome translated to a `Lookup`."""
    try:
        answer = await resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return Lookup(missing=f"{name} does not exist (NXDOMAIN)")
    except dns.resolver.LifetimeTimeout:
        return Lookup(error=f"{rdtype} lookup for {name} timed out after {resolver.lifetime:g}s")
    except dns.resolver.NoNameservers as exc:
        # Every server answered SERVFAIL/REFUSED (or failed): not an absent record.
        return Lookup(error=f"{rdtype} lookup for {name} failed: {short(exc)}")
    except dns.exception.DNSException as exc:
        return Lookup(error=f"{rdtype} lookup for {name} failed: {short(exc)}")
    except OSError as exc:  # no route, a refused TCP fallback
        return Lookup(error=f"{rdtype} lookup for {name} failed: {exc.strerror or exc}")
    if answer.rrset is None or len(answer.rrset) == 0:
        return Lookup(missing=f"{name} has no {rdtype} record")
    return Lookup(records=tuple(answer.rrset),
                  authentic=bool(answer.response.flags & dns.flags.AD))


def short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def txt_strings(rdata: object) -> str:
    """A TXT record's character-strings joined without spaces (RFC 7208 §3.3)."""
    assert isinstance(rdata, TXT)
    return b"".join(rdata.strings).decode("utf-8", "replace")
