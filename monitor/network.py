"""TLS client contexts and the OS/TLS failures every client here meets, classified once.

The SMTP probe (aiosmtplib), the mailbox backends (imaplib, poplib) and the
checks all open TLS connections and see the same `ssl` and `OSError` trees;
`os_failure` names them the same way for all (the table in DESIGN.md).
"""

from __future__ import annotations

import functools
import socket
import ssl
from pathlib import Path

from monitor.results import FailureClass

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h) worth a plain name.
_VERIFY_REASONS = {
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "unknown CA (the chain ends in an untrusted self-signed root)",
    20: "unknown CA (unable to get local issuer certificate)",
    21: "unknown CA (unable to verify the first certificate)",
    62: "hostname mismatch",
    64: "IP address mismatch",
}


@functools.lru_cache(maxsize=64)
def client_context(verify: bool, ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context per (verify, CA) pair; loading the system store costs ~10 ms."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def verify_reason(exc: ssl.SSLCertVerificationError) -> str:
    return _VERIFY_REASONS.get(exc.verify_code, exc.verify_message or str(exc))


def os_failure(exc: OSError) -> tuple[FailureClass, str]:
    """The class and a short text for a TLS or socket error (ssl.SSLError is an OSError)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FailureClass.TLS, f"certificate verification failed: {verify_reason(exc)}"
    if isinstance(exc, ssl.SSLError):
        return FailureClass.TLS, f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return FailureClass.NETWORK, f"DNS lookup failed: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return FailureClass.NETWORK, "connection refused"
    if isinstance(exc, ConnectionResetError):
        return FailureClass.NETWORK, "connection reset by peer"
    if isinstance(exc, TimeoutError):
        return FailureClass.TIMEOUT, short(str(exc)) or "timed out"
    return FailureClass.NETWORK, short(exc.strerror or str(exc))


def short(text: str, limit: int = 500) -> str:
    """Server text is untrusted: keep a hostile 1 MB line out of results and logs."""
    text = text.replace("\r", " ").strip()
    return text if len(text) <= limit else text[:limit] + "…"
