"""The one resolver every posture lookup goes through, with a query budget.

It is the checks' resolver (`monitor.checks.dns`): `settings.dns_server` when
set, else the system's, no cache. Remote records decide how many queries a
posture run makes (an SPF include tree, MX hosts, TLSA per host), so each run
gets a budget; past it a lookup answers with an error instead of querying.
"""

from __future__ import annotations

import dns.asyncresolver
import dns.resolver

from monitor.lookups import (
    DEFAULT_LIFETIME,
    DEFAULT_TIMEOUT,
    Lookup,
    lookup,
    make_resolver,
    txt_strings,
)

# Enough for an SPF tree at its limits (10 lookups, 10 MX hosts each), MTA-STS, DANE on
# a few MX hosts, and a handful of DNSBL zones; a hostile tree stops here.
DEFAULT_BUDGET = 200


class Resolver:
    """Async lookups through one dnspython resolver; never raises."""

    def __init__(self, nameserver: tuple[str, int] | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, lifetime: float = DEFAULT_LIFETIME,
                 budget: int = DEFAULT_BUDGET) -> None:
        self.nameserver = nameserver
        self.budget = budget
        self.queries = 0
        self._timeout, self._lifetime = timeout, lifetime
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._setup_error: str | None = None

    def _get(self) -> dns.asyncresolver.Resolver | None:
        if self._resolver is None and self._setup_error is None:
            try:
                self._resolver = make_resolver(self.nameserver, timeout=self._timeout,
                                               lifetime=self._lifetime)
            except (dns.resolver.NoResolverConfiguration, OSError) as exc:
                self._setup_error = f"no DNS resolver configured: {exc}"
        return self._resolver

    async def query(self, name: str, rdtype: str) -> Lookup:
        resolver = self._get()
        if resolver is None:
            return Lookup(error=self._setup_error)
        if self.queries >= self.budget:
            return Lookup(error=f"{rdtype} lookup for {name} not made: this posture run "
                                f"reached its budget of {self.budget} DNS queries")
        self.queries += 1
        return await lookup(resolver, name.rstrip("."), rdtype)

    async def txt(self, name: str) -> tuple[list[str], Lookup]:
        """The TXT strings at `name` (each record's strings joined), and the lookup."""
        found = await self.query(name, "TXT")
        return [txt_strings(r) for r in found.records], found

