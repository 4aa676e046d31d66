"""Sender-domain DNS against a real DNS server on loopback (tests/unit/checks/dnsserver.py)."""

from __future__ import annotations

import time

import dns.rcode

from monitor.checks.dns import lookup_domain
from monitor.checks.model import MxHost
from monitor.checks.verdict import dns_reasons
from tests.unit.checks.dnsserver import DnsServer, domain_records, txt

DOMAIN = "example.com"


async def test_mx_spf_and_dmarc_present() -> None:
    records = domain_records(DOMAIN, extra_txt=("google-site-verification=abc",))
    records[(DOMAIN, "MX")].append(f"5 backup.{DOMAIN}.")
    async with DnsServer(records) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert report.nameserver == f"127.0.0.1:{server.port}"
    assert report.mx.present and report.mx.error is None
    assert report.mx.hosts == [MxHost(preference=5, exchange="backup.example.com."),
                               MxHost(preference=10, exchange="mx.example.com.")]
    spf = report.spf
    assert (spf.present, spf.parseable, spf.record, spf.all_qualifier) == (
        True, True, "v=spf1 mx -all", "-")
    dmarc = report.dmarc
    assert (dmarc.name, dmarc.present, dmarc.valid, dmarc.policy, dmarc.pct) == (
        "_dmarc.example.com", True, True, "reject", None)
    assert dmarc.rua == ["mailto:dmarc@example.com"]
    assert dns_reasons(report) == [] and report.notes == []
    assert {("example.com", "MX"), ("example.com", "TXT"),
            ("_dmarc.example.com", "TXT")} <= set(server.queries)


async def test_txt_strings_are_joined_without_spaces() -> None:
    # RFC 7208 §3.3: a long record split into several character-strings.
    records = domain_records(DOMAIN, spf=None)
    records[(DOMAIN, "TXT")] = [txt("v=spf1 ip4:192.0.2.0/24 ", "include:_spf.example.net -all")]
    async with DnsServer(records) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert report.spf.record == "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all"
    assert report.spf.parseable


async def test_missing_dmarc_is_reported_with_the_name_looked_up() -> None:
    async with DnsServer(domain_records(DOMAIN, dmarc=None)) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert not report.dmarc.present and report.dmarc.error is None
    assert dns_reasons(report) == ["example.com has no DMARC record (_dmarc.example.com)"]
    assert any("organizational-domain fallback" in n for n in report.notes)


async def test_two_spf_records_are_a_permerror() -> None:
    records = domain_records(DOMAIN, extra_txt=("v=spf1 include:other.example -all",))
    async with DnsServer(records) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert report.spf.present and not report.spf.parseable and len(report.spf.records) == 2
    assert dns_reasons(report) == [
        "example.com has 2 SPF records (RFC 7208 §4.5: permerror)"]


async def test_unparseable_spf() -> None:
    async with DnsServer(domain_records(DOMAIN, spf="v=spf1 mx bogus:x -all")) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert report.spf.present and not report.spf.parseable
    assert dns_reasons(report) == [
        "example.com SPF record is not parseable: unknown mechanism 'bogus'"]


async def test_no_mx_no_spf_and_an_invalid_dmarc() -> None:
    records = domain_records(DOMAIN, mx=False, spf=None, dmarc="v=DMARC1; p=maybe")
    async with DnsServer(records) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert not report.mx.present and report.mx.hosts == [] and report.mx.error is None
    assert dns_reasons(report) == [
        "example.com has no MX record",
        "example.com has no SPF record (TXT v=spf1)",
        "DMARC record at _dmarc.example.com is invalid: p=maybe is not one of none, "
        "quarantine, reject",
    ]


async def test_null_mx() -> None:
    records = domain_records(DOMAIN)
    records[(DOMAIN, "MX")] = ["0 ."]
    async with DnsServer(records) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert report.mx.null_mx and not report.mx.present
    assert "null MX (RFC 7505)" in dns_reasons(report)[0]


async def test_a_domain_that_does_not_exist() -> None:
    async with DnsServer(domain_records("other.example")) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address)
    assert not (report.mx.present or report.spf.present or report.dmarc.present)
    assert report.mx.error is None  # NXDOMAIN is an answer, not a failed lookup
    assert dns_reasons(report)[0] == "example.com has no MX record"


async def test_a_server_that_never_answers_is_reported_within_the_lifetime() -> None:
    async with DnsServer(domain_records(DOMAIN), silent=True) as server:
        started = time.monotonic()
        report = await lookup_domain(DOMAIN, nameserver=server.address, attempt_timeout=0.2,
                                    lifetime=0.6)
        took = time.monotonic() - started
    assert took < 2.0, f"took {took:.1f}s with a 0.6s lifetime"
    assert server.queries, "the server was never asked"
    assert report.mx.error == "MX lookup for example.com timed out after 0.6s"
    assert report.dmarc.error == "TXT lookup for _dmarc.example.com timed out after 0.6s"
    assert not report.mx.present and not report.spf.present
    assert dns_reasons(report) == [
        "MX: MX lookup for example.com timed out after 0.6s",
        "SPF: TXT lookup for example.com timed out after 0.6s",
        "DMARC: TXT lookup for _dmarc.example.com timed out after 0.6s",
    ]


async def test_servfail_is_a_failed_lookup_not_a_missing_record() -> None:
    async with DnsServer(domain_records(DOMAIN), rcode=dns.rcode.SERVFAIL) as server:
        report = await lookup_domain(DOMAIN, nameserver=server.address, lifetime=2.0)
    assert report.mx.error is not None and "MX lookup for example.com failed" in \
        report.mx.error and "SERVFAIL" in report.mx.error
    assert report.dmarc.error is not None


async def test_nothing_listening_is_reported() -> None:
    async with DnsServer() as server:
        port = server.port
    report = await lookup_domain(DOMAIN, nameserver=("127.0.0.1", port), attempt_timeout=0.2,
                                lifetime=0.6)
    assert report.mx.error is not None and report.spf.error is not None
