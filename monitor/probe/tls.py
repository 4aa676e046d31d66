"""TLS for probes: client contexts, and what a handshake tells about the peer.

A failed verification still reports the certificate: the engine
opens a second, non-verifying handshake just to read it, so a result says
"expired 2026-11-02, issuer R3" rather than only "verify failed".
"""

from __future__ import annotations

import functools
import hashlib
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from monitor.network import client_context
from monitor.probe.result import Certificate, TlsInfo


def inspection_context() -> ssl.SSLContext:
    return client_context(False, None)


def describe_session(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, verified: bool,
                     verify_error: str | None = None) -> TlsInfo:
    """TLS facts from a live connection."""
    if ssl_object is None:
        return TlsInfo(verified=False, verify_error=verify_error)
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    return TlsInfo(
        protocol=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        verified=verified,
        verify_error=verify_error,
        certificate=parse_certificate(der) if der else None,
    )


def spki_sha256(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


# Keyed by the DER bytes: a server presents the same certificate probe after probe, and
# parsing it (names, SANs, fingerprint) was the largest cost of a probe that the bare
# client does not pay (bench/: ~0.15 ms of ~1.5 ms CPU a send). The result is frozen.
@functools.lru_cache(maxsize=256)
def parse_certificate(der: bytes) -> Certificate:
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [*ext.get_values_for_type(x509.DNSName),
                *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        pass
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(sans),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        spki_sha256=spki_sha256(cert),
    )

