"""Probe and receive results built in code, recorded through the service's own
recording path (state, events, rollups), for the status page's tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor import store
from monitor.config import Config
from monitor.probe.result import (
    Capabilities,
    Certificate,
    Diagnosis,
    FailureClass,
    ProbeResult,
    Step,
    StepResult,
    TlsInfo,
)
from monitor.receive.result import AuthVerdict, Placement, ReceiveResult, ReceiveStatus
from monitor.service.context import AppContext
from monitor.service.probing import record
from monitor.service.receiving import settle

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
_serial = itertools.count()
XSS_BANNER = '<script>alert("banner")</script> mx.evil.test ESMTP "><img src=x onerror=alert(1)>'
XSS_SUBJECT = 'CN=<svg onload=alert(5)>,O="><script>alert(6)</script>'
XSS_REPLY = '5.1.1 <seed@x.test>: "><img src=x onerror=alert(2)><script>alert(3)</script>'


def run_id(at: datetime) -> str:
    """Time-ordered like monitor.ids.new_id, but from the injected time."""
    return f"{int(at.timestamp() * 1000):013x}{next(_serial):012x}"


def probe(provider: str, at: datetime, *, ok: bool = True, duration_ms: float = 120.0,
          banner: str = "mx.example.test ESMTP", reply: str = "2.1.5 Ok",
          code: int = 250, enhanced: str = "2.1.5",
          failure_class: FailureClass = FailureClass.PERMANENT,
          not_after: datetime | None = None, token: str | None = None,
          subject: str = "CN=mx.example.test") -> ProbeResult:
    steps = [
        StepResult(step=Step.CONNECT, command="connect", code=220, text=banner,
                   latency_ms=duration_ms * 0.2),
        StepResult(step=Step.EHLO, command="EHLO probe.test", code=250, text="mx.example.test",
                   latency_ms=duration_ms * 0.1),
        StepResult(step=Step.STARTTLS, command="STARTTLS", code=220, enhanced_code="2.0.0",
                   text="2.0.0 Ready", latency_ms=duration_ms * 0.3),
        StepResult(step=Step.RCPT, command="RCPT TO:<seed@x.test>",
                   code=code if not ok else 250, enhanced_code=enhanced if not ok else "2.1.5",
                   text=reply, latency_ms=duration_ms * 0.2, ok=ok,
                   failure_class=None if ok else failure_class, recipient="seed@x.test"),
    ]
    diagnosis = None if ok else Diagnosis(
        summary=f"RCPT rejected with {code} {enhanced}: the mailbox does not exist",
        action="Check the recipient address.", retry=failure_class.retryable)
    certificate = Certificate(subject=subject, issuer="CN=Test CA",
                              not_after=not_after or at + timedelta(days=42),
                              fingerprint_sha256="ab" * 32)
    return ProbeResult(
        run_id=run_id(at), provider=provider, host="mx.example.test", port=587,
        tls_mode="starttls", mode="send", started_at=at, duration_ms=duration_ms, ok=ok,
        steps=tuple(steps), tls=TlsInfo(protocol="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256",
                                        verified=True, certificate=certificate),
        capabilities=Capabilities(extensions=("STARTTLS",), starttls=True),
        failed_step=None if ok else Step.RCPT, failure_class=None if ok else failure_class,
        diagnosis=diagnosis, token=token, accepted_at=at if token else None)


def arrival(provider: str, sent: datetime, *, latency_ms: float = 4000.0,
            status: ReceiveStatus = ReceiveStatus.ARRIVED,
            placement: Placement | None = Placement.INBOX, folder: str = "INBOX",
            mailbox: str = "seed") -> ReceiveResult:
    arrived = status in (ReceiveStatus.ARRIVED, ReceiveStatus.LATE)
    return ReceiveResult(
        token=f"dm-{next(_serial)}", run_id=run_id(sent), provider=provider, mailbox=mailbox,
        backend="maildir", status=status, checked_at=sent + timedelta(seconds=30),
        accepted_at=sent, deadline=sent + timedelta(minutes=5),
        latency_ms=latency_ms if arrived else None, folder=folder if arrived else None,
        placement=placement if arrived else None,
        spf=AuthVerdict.PASS if arrived else None, dkim=AuthVerdict.PASS if arrived else None,
        dmarc=AuthVerdict.FAIL if arrived else None, authserv_id="mx.seed.test")


def config(*providers: str, **settings: Any) -> Config:
    return Config.model_validate({
        "providers": [{"name": name, "host": "mx.example.test", "mode": "send",
                       "from": "probe@example.test", "to": ["seed"], "interval": "1h",
                       "auth": {"username": "user", "password": "hunter2-provider-secret"},
                       "thresholds": {"failure": 1, "recovery": 1}}
                      for name in providers],
        "mailboxes": [{"name": "seed", "address": "seed@x.test", "kind": "maildir",
                       "path": "/nonexistent/maildir"}],
        "subscriptions": [{"name": "ops-hook", "kind": "generic",
                           "url": "https://hooks.example.test/secret-path-hunter3",
                           "secret": "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="}],
        "settings": settings})


async def record_probe(ctx: AppContext, result: ProbeResult) -> None:
    provider = ctx.config.provider(result.provider)
    assert provider is not None
    previous = ctx.clock
    ctx.clock = lambda: result.started_at + timedelta(seconds=1)
    try:
        await record(ctx, provider, result)
    finally:
        ctx.clock = previous


async def record_arrival(ctx: AppContext, result: ReceiveResult) -> None:
    """As the receive job does: the send left a pending token, the result settles it."""
    await ctx.writer.run(lambda s: store.tokens.add_pending(
        s, token=result.token, run_id=result.run_id, provider=result.provider,
        mailbox=result.mailbox, accepted_at=result.accepted_at, deadline=result.deadline))
    previous = ctx.clock
    ctx.clock = lambda: result.checked_at
    try:
        await settle(ctx, result)
    finally:
        ctx.clock = previous


async def seed_history(ctx: AppContext, now: datetime = NOW) -> None:
    """Two days of hourly runs: `good` up throughout; `broken` up, then an incident that
    recovered, then failing for the last three hours with hostile text in its banner
    and reply; `junky` up at SMTP while its test messages land in junk."""
    start = now - timedelta(hours=47)
    for h in range(48):
        at = start + timedelta(hours=h)
        await record_probe(ctx, probe("good", at, duration_ms=100 + 10 * (h % 5),
                                      token=f"dm-{h}"))
        await record_arrival(ctx, arrival("good", at, latency_ms=3000 + 100 * (h % 7)))
        failing = 20 <= h < 23 or h >= 45
        await record_probe(ctx, probe(
            "broken", at, ok=not failing, duration_ms=250 + 5 * h,
            banner=XSS_BANNER if failing else "mx.example.test ESMTP",
            reply=XSS_REPLY if failing else "2.1.5 Ok", code=550, enhanced="5.1.1",
            subject=XSS_SUBJECT if failing else "CN=mx.example.test"))
        await record_probe(ctx, probe("junky", at, duration_ms=180))
        await record_arrival(ctx, arrival("junky", at, placement=Placement.JUNK,
                                          folder='Junk"><img src=x onerror=alert(4)>'))
