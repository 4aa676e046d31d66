"""The immutable record of one probe run.

A probe never raises: whatever happened on the wire ends up here, step by
step, with the failing step and its class. Everything downstream (CLI table,
JSON, events, webhooks) reads this model and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from monitor.results import Diagnosis, FailureClass, Frozen

# Shared with the receive side (monitor/results.py); part of this model's surface.
__all__ = ["Capabilities", "Certificate", "Diagnosis", "FailureClass", "Finding", "Frozen",
           "ProbeResult", "Step", "StepResult", "TlsInfo"]


class Step(StrEnum):
    """The SMTP session steps, in the order a probe runs them (DESIGN.md)."""

    CONNECT = "connect"  # TCP (and for implicit TLS, the handshake) plus the 220 banner
    EHLO = "ehlo"
    HELO = "helo"  # only when EHLO was refused
    NOOP = "noop"
    STARTTLS = "starttls"
    EHLO_TLS = "ehlo_tls"  # EHLO again after STARTTLS (RFC 3207 §4.2: state is reset)
    AUTH = "auth"
    VRFY = "vrfy"
    EXPN = "expn"
    MAIL = "mail"
    RCPT = "rcpt"
    RSET = "rset"
    DATA = "data"  # the DATA command itself, answered 354
    MESSAGE = "message"  # the content and final dot, answered 250 (queued) or a rejection
    QUIT = "quit"


class StepResult(Frozen):
    """One command and its reply. `command` never holds a credential."""

    step: Step
    command: str | None
    code: int | None = None
    enhanced_code: str | None = None
    text: str = ""
    latency_ms: float = 0.0
    ok: bool = True
    # Set only on the step that failed the probe. A tolerated refusal (EHLO
    # answered 502, so HELO follows) or a QUIT without 221 has ok=False and no class.
    failure_class: FailureClass | None = None
    # Which recipient an RCPT step was for; RCPT is recorded once per recipient.
    recipient: str | None = None


class Certificate(Frozen):
    subject: str
    issuer: str
    sans: tuple[str, ...] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None
    serial: str = ""
    fingerprint_sha256: str = ""
    # SHA-256 of the SubjectPublicKeyInfo: what a DANE "3 1 1" TLSA record publishes
    # (RFC 7671 §5.1), so posture can match the certificate this probe saw.
    spki_sha256: str = ""


class TlsInfo(Frozen):
    """What the TLS handshake negotiated, and whether we trust the peer.

    When verification fails the certificate is still reported, so that
    "expired on 2026-11-02" is readable next to the failure.
    """

    protocol: str | None = None
    cipher: str | None = None
    verified: bool = False
    verify_error: str | None = None  # expired, self-signed, unknown CA, hostname mismatch…
    certificate: Certificate | None = None


class Capabilities(Frozen):
    """ESMTP extensions as advertised by the last EHLO (after TLS, when there was TLS)."""

    esmtp: bool = True
    extensions: tuple[str, ...] = ()  # keywords, upper-case, sorted
    size: int | None = None
    auth_mechanisms: tuple[str, ...] = ()
    starttls: bool = False
    pipelining: bool = False
    eightbitmime: bool = False
    smtputf8: bool = False
    enhancedstatuscodes: bool = False
    chunking: bool = False
    dsn: bool = False


class Finding(Frozen):
    """A posture observation that is not a failure (e.g. VRFY answers)."""

    kind: str
    message: str


class ProbeResult(Frozen):
    run_id: str
    provider: str
    host: str
    port: int
    tls_mode: str
    mode: str
    started_at: datetime
    duration_ms: float
    ok: bool
    steps: tuple[StepResult, ...]
    tls: TlsInfo | None = None
    capabilities: Capabilities | None = None
    failed_step: Step | None = None
    failure_class: FailureClass | None = None
    diagnosis: Diagnosis | None = None
    findings: tuple[Finding, ...] = ()
    token: str | None = None  # the X-Delivery-Monitor-Token of a send, for the receive side
    message_id: str | None = None
    # When the server answered 250 to the final dot: the receive side measures from here.
    accepted_at: datetime | None = None

    @property
    def failure(self) -> StepResult | None:
        return next((s for s in self.steps if s.failure_class is not None), None)
