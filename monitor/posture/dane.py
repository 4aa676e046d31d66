"""DANE findings (RFC 7672 for SMTP, RFC 7671 for TLSA usage): TLSA records at
`_<port>._tcp.<host>` for the domain's MX hosts and each probed provider, whether
the resolver validated them (the AD bit), and, for a host a probe connected to,
whether a TLSA record matches the certificate that probe saw.

Only DANE-EE (3) and DANE-TA (2) are usable for SMTP (RFC 7672 §3.1.3). The probe
records the leaf certificate's SHA-256 and its SubjectPublicKeyInfo's SHA-256, so
"3 0 1" and "3 1 1" records (nearly all that are published) are matched from
the result; with the DER chain (`Seen.chain`) every combination is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dns.rdtypes.ANY.TLSA import TLSA

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.resolver import Resolver
from monitor.probe.result import Certificate

DANE_TA, DANE_EE = 2, 3


@dataclass(frozen=True)
class Seen:
    """What a probe saw of a host's certificate: the DER chain (leaf first) when it
    has one, else the leaf's digests from its result."""

    host: str
    port: int
    chain: tuple[bytes, ...] = ()
    cert_sha256: str = ""
    spki_sha256: str = ""

    @classmethod
    def from_certificate(cls, host: str, port: int, cert: Certificate) -> Seen:
        return cls(host=host, port=port, cert_sha256=cert.fingerprint_sha256,
                   spki_sha256=cert.spki_sha256)


def tlsa_text(rr: TLSA) -> str:
    return f"{rr.usage} {rr.selector} {rr.mtype} {rr.cert.hex()}"


def matches(rr: TLSA, seen: Seen) -> bool | None:
    """Whether the record matches what was seen; None when it cannot be told (a DANE-TA
    record without the chain, a combination the digests do not cover)."""
    if seen.chain:
        candidates = seen.chain[:1] if rr.usage == DANE_EE else seen.chain[1:]
        if not candidates:
            return None
        return any(_digest(der, rr.selector, rr.mtype) == rr.cert for der in candidates)
    if rr.usage != DANE_EE or rr.mtype != 1:
        return None
    known = {0: seen.cert_sha256, 1: seen.spki_sha256}.get(rr.selector)
    return None if not known else known.lower() == rr.cert.hex()


def _digest(der: bytes, selector: int, mtype: int) -> bytes | None:
    data = der
    if selector == 1:
        key = x509.load_der_x509_certificate(der).public_key()
        data = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if mtype == 0:
        return data
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return None


async def check_host(host: str, port: int, resolver: Resolver,
                     seen: Seen | None = None) -> list[Finding]:
    """The TLSA records of one host, matched against `seen` when a probe connected."""
    host = host.rstrip(".").lower()
    name = f"_{port}._tcp.{host}"
    found = await resolver.query(name, "TLSA")
    if found.error is not None:
        return [warning("dane.lookup_failed",
                        f"The TLSA lookup at {name} failed ({found.error}): DANE senders "
                        "defer mail to the host while it fails (RFC 7672 §2.2). Usually "
                        "transient: wait; if it persists, fix the zone's DNSSEC.",
                        subject=name)]
    records = [r for r in found.records if isinstance(r, TLSA)]
    if not records:
        return [info("dane.no_tlsa",
                     f"{host} publishes no TLSA record at {name}: senders use TLS when offered "
                     "but cannot detect a forged certificate. Nothing to fix; add DANE "
                     "(DNSSEC-signed TLSA records, RFC 7672) to protect it.", subject=name)]
    text = " | ".join(tlsa_text(r) for r in records)
    findings: list[Finding] = []
    if not found.authentic:
        findings.append(warning(
            "dane.not_validated",
            f"The TLSA records at {name} came without the resolver's DNSSEC validation (no "
            "AD bit): DANE senders use them only from a signed zone. Fix it: sign the zone "
            "with DNSSEC, or check through a validating resolver (settings.dns_server).",
            text, subject=name))
    usable = [r for r in records if r.usage in (DANE_TA, DANE_EE)
              and r.selector in (0, 1) and r.mtype in (0, 1, 2)]
    if len(usable) < len(records):
        findings.append(warning(
            "dane.tlsa_unusable",
            f"{len(records) - len(usable)} TLSA record(s) at {name} are unusable for SMTP: "
            "only usages 2 (DANE-TA) and 3 (DANE-EE), selectors 0-1 and matching types 0-2 "
            "count (RFC 7672 §3.1.3). Fix it: publish them as 3 1 1 or 2 1 1.",
            text, subject=name))
    if seen is not None and usable:
        findings.append(_match(name, usable, seen, text))
    return findings or [info("dane.ok", f"{host} publishes DNSSEC-validated TLSA records at "
                                        f"{name}. Nothing to change.", text, subject=name)]


def _match(name: str, usable: Sequence[TLSA], seen: Seen, text: str) -> Finding:
    results = [matches(r, seen) for r in usable]
    if any(results):
        return info("dane.tlsa_match",
                    f"A TLSA record at {name} matches the certificate the probe saw at "
                    f"{seen.host}:{seen.port}. Nothing to change.", text, subject=name)
    if all(r is None for r in results):
        return info("dane.tlsa_unverifiable",
                    f"The TLSA records at {name} could not be compared with what the probe "
                    "saw (DANE-TA needs the issuer chain; only 3 0 1 and 3 1 1 are compared "
                    "from a probe result). Nothing to change.", text, subject=name)
    seen_as = f"SPKI SHA-256 {seen.spki_sha256}" if seen.spki_sha256 else "its chain"
    return error("dane.tlsa_mismatch",
                 f"No TLSA record at {name} matches the certificate the probe saw at "
                 f"{seen.host}:{seen.port} ({seen_as}): DANE senders refuse to deliver to this "
                 "host. Fix it now: publish a TLSA record for the current certificate (3 1 1 "
                 "with the SPKI digest), and publish the next one before each renewal.",
                 text, subject=name)
