"""Zone fixtures for posture tests: one good domain and one bad case per finding."""

from __future__ import annotations

from tests.unit.checks.dnsserver import Records, txt


def spf_tree(domain: str, includes: int) -> Records:
    """`domain` whose SPF includes a chain of `includes` records, each one lookup."""
    records: Records = {}
    names = [f"inc{i}.{domain}" for i in range(includes)]
    top = " ".join(f"include:{n}" for n in names)
    records[(domain, "TXT")] = [long_txt(f"v=spf1 {top} -all")]
    for name in names:
        records[(name, "TXT")] = [txt("v=spf1 ip4:192.0.2.0/24 -all")]
    return records



def long_txt(text: str) -> str:
    """TXT rdata for a record longer than one 255-byte character-string (RFC 7208 §3.3)."""
    return txt(*(text[i:i + 255] for i in range(0, len(text), 255)))


def good_domain(domain: str) -> Records:
    """A domain with nothing to fix that DNS alone can show (no MTA-STS: it needs HTTPS)."""
    return {
        (domain, "A"): ["127.0.0.1"],
        (domain, "MX"): [f"10 mx.{domain}."],
        (f"mx.{domain}", "A"): ["127.0.0.1"],
        (domain, "TXT"): [txt("v=spf1 ip4:127.0.0.1 include:_spf.esp.test -all")],
        ("_spf.esp.test", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 -all")],
        (f"_dmarc.{domain}", "TXT"): [txt(f"v=DMARC1; p=reject; rua=mailto:d@{domain}")],
        (f"_smtp._tls.{domain}", "TXT"): [txt(f"v=TLSRPTv1; rua=mailto:tls@{domain}")],
    }
