"""A tiny authoritative DNS server on loopback UDP, built with dnspython's message API.

Serves `records` — {(name, type): [rdata text, ...]} — and answers like a real
server: NOERROR with the records, NOERROR and no answer (NODATA) for a name
that has other types, NXDOMAIN for an unknown name. `silent` drops every query
(a server that never answers); `rcode` answers every query with it (SERVFAIL…).
Records can be changed while it runs; `queries` logs what was asked. Answers for
the names in `authentic` carry the AD bit, as from a validating resolver.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Records = dict[tuple[str, str], list[str]]


def txt(*strings: str) -> str:
    """TXT rdata text: each argument one quoted character-string."""
    return " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings)


@dataclass
class DnsServer:
    records: Records = field(default_factory=dict)
    silent: bool = False
    rcode: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    queries: list[tuple[str, str]] = field(default_factory=list)
    authentic: set[str] = field(default_factory=set)
    _transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def __aenter__(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # garbage gets no answer, as from a real server
            return None
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.rcode is not None:
            response.set_rcode(self.rcode)
            return response.to_wire()
        known = {n.rstrip(".").lower() for n, _ in self.records}
        values = self.records.get((name, rdtype), [])
        if name not in known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values:
            if name in self.authentic:
                response.flags |= dns.flags.AD
            response.answer.append(dns.rrset.from_text_list(
                question.name, 300, dns.rdataclass.IN, question.rdtype, values))
        return response.to_wire()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport is not registered as a DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def domain_records(domain: str, *, mx: bool = True, spf: str | None = "v=spf1 mx -all",
                   dmarc: str | None = "v=DMARC1; p=reject; rua=mailto:dmarc@{domain}",
                   extra_txt: tuple[str, ...] = ()) -> Records:
    """A domain with an MX, an SPF record and a DMARC record, each optional."""
    records: Records = {(domain, "A"): ["127.0.0.1"]}
    if mx:
        records[(domain, "MX")] = [f"10 mx.{domain}."]
        records[(f"mx.{domain}", "A")] = ["127.0.0.1"]
    txts = [txt(t) for t in extra_txt]
    if spf is not None:
        txts.append(txt(spf))
    if txts:
        records[(domain, "TXT")] = txts
    if dmarc is not None:
        records[(f"_dmarc.{domain}", "TXT")] = [txt(dmarc.format(domain=domain))]
    return records
