"""Forward-confirmed reverse DNS of the sending IP (RFC 8601 §3's iprev; Gmail and
Yahoo require it from bulk senders): the PTR name must resolve back to the IP."""

from __future__ import annotations

import ipaddress

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.resolver import Resolver


async def check(ip: str, resolver: Resolver) -> list[Finding]:
    address = ipaddress.ip_address(ip)
    name = address.reverse_pointer
    found = await resolver.query(name, "PTR")
    if found.error is not None:
        return [warning("rdns.lookup_failed",
                        f"The PTR lookup for {ip} failed ({found.error}). Usually transient: "
                        "wait and check again.", subject=ip)]
    ptrs = [str(r).rstrip(".") for r in found.records]
    if not ptrs:
        return [error("rdns.missing",
                      f"The sending IP {ip} has no reverse DNS (no PTR at {name}): many "
                      "receivers reject or junk mail from it. Fix it: ask whoever owns the IP "
                      "(your provider or host) to set a PTR to a name that resolves back to "
                      "it.", subject=ip)]
    rdtype = "A" if address.version == 4 else "AAAA"
    for ptr in ptrs:
        forward = await resolver.query(ptr, rdtype)
        if any(ipaddress.ip_address(str(r)) == address for r in forward.records):
            return [info("rdns.ok", f"The sending IP {ip} has forward-confirmed reverse DNS "
                                    f"({ptr}). Nothing to change.",
                         f"{name} PTR {ptr}", subject=ip)]
    return [error("rdns.not_forward_confirmed",
                  f"The sending IP {ip} has reverse DNS ({', '.join(ptrs)}), but that name does "
                  f"not resolve back to {ip}: receivers treat it as having none. Fix it: add an "
                  f"{rdtype} record for {ptrs[0]} pointing to {ip}, or change the PTR.",
                  f"{name} PTR {', '.join(ptrs)}", subject=ip)]
