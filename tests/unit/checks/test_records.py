"""SPF and DMARC record syntax, without DNS."""

from __future__ import annotations

import pytest

from monitor.posture.records import is_dmarc, is_spf, parse_dmarc, parse_spf


@pytest.mark.parametrize(("text", "expected"), [
    ("v=spf1 -all", True), ("V=SPF1 mx", True), ("v=spf1", True),
    ("v=spf10 -all", False), ("spf1 -all", False), ("google-site-verification=x", False),
])
def test_is_spf(text: str, expected: bool) -> None:
    assert is_spf(text) is expected


@pytest.mark.parametrize(("record", "qualifier", "lookups"), [
    ("v=spf1 -all", "-", 0),
    ("v=spf1 mx a:mail.example.com/24 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", "~", 2),
    ("v=spf1 include:_spf.google.com include:sendgrid.net ?all", "?", 2),
    ("v=spf1 a//64 mx:example.com/24//64 ptr exists:%{i}.spf.example.com all", "+", 4),
    ("v=spf1 redirect=_spf.example.com", None, 1),
    ("v=spf1 ip4:192.0.2.1 exp=explain.example.com -all", "-", 0),
    ("v=spf1 mx -all foo=bar", "-", 1),  # unknown modifier: ignored (RFC 7208 §6)
])
def test_parseable_records(record: str, qualifier: str | None, lookups: int) -> None:
    parsed = parse_spf(record)
    assert parsed.ok, parsed.error
    assert (parsed.all_qualifier, parsed.lookup_terms) == (qualifier, lookups)


def test_unknown_modifier_is_a_warning() -> None:
    assert parse_spf("v=spf1 -all foo=bar").warnings == (
        "unknown SPF modifier foo= (ignored by receivers)",)


@pytest.mark.parametrize(("record", "error"), [
    ("v=spf1 mx foo -all", "unknown mechanism 'foo'"),
    ("v=spf1 ip4:999.1.1.1 -all", "bad ip4 address"),
    ("v=spf1 ip4:2001:db8::1 -all", "ip4 has an IPv6 address"),
    ("v=spf1 ip6:192.0.2.1 -all", "ip6 has an IPv4 address"),
    ("v=spf1 ip4 -all", "ip4 needs an address"),
    ("v=spf1 include -all", "include needs :domain"),
    ("v=spf1 -all:x", "`all` takes no argument"),
    ("v=spf1 a/33 -all", "bad a prefix length"),
    ("v=spf1 redirect=a.example redirect=b.example", "redirect= appears twice"),
    ("v=spf1 !mx -all", "neither a mechanism nor a modifier"),
    ("v=spf2 -all", "does not start with v=spf1"),
])
def test_unparseable_records(record: str, error: str) -> None:
    parsed = parse_spf(record)
    assert not parsed.ok
    assert parsed.error is not None and error in parsed.error


def test_dmarc_tags() -> None:
    assert is_dmarc("v=DMARC1; p=none") and is_dmarc("v = DMARC1;p=none")
    assert not is_dmarc("v=DMARC2; p=none") and not is_dmarc("p=none; v=DMARC1")
    parsed = parse_dmarc("v=DMARC1; p=Quarantine; sp=reject; pct=50; "
                         "rua=mailto:a@example.com, mailto:b@example.com; fo=1")
    assert parsed.valid
    assert (parsed.policy, parsed.subdomain_policy, parsed.pct) == ("quarantine", "reject", 50)
    assert parsed.rua == ("mailto:a@example.com", "mailto:b@example.com")


@pytest.mark.parametrize(("record", "error"), [
    ("v=DMARC1", "no p= tag"),
    ("v=DMARC1; p=block", "p=block is not one of"),
    ("v=DMARC1; p=none; sp=maybe", "sp=maybe is not one of"),
    ("v=DMARC1; p=none; pct=150", "pct=150 is not an integer from 0 to 100"),
    ("v=DMARC1; p=none; junk", "tag 'junk' has no '='"),
])
def test_invalid_dmarc(record: str, error: str) -> None:
    parsed = parse_dmarc(record)
    assert not parsed.valid and parsed.error is not None and error in parsed.error
