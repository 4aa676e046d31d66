"""Run one pre-campaign check: send to every seed, wait for each, check DNS and the
sending domain's posture, decide.

Each seed gets its own SMTP session carrying its own token (`run_probe` with a
`MessageSpec` for that one recipient), so placement is known per seed. Sends
run a few at a time (`MAX_PARALLEL_SENDS`: a provider may throttle a burst of
sessions); once a seed's message is accepted, its wait on the receive side
runs concurrently with everything else, and so do the DNS lookups. The posture
findings (monitor/posture/) come last: they need the first seed message that
arrived (kept whole, for DKIM and its Received chain) and the provider
certificate a send saw (for DANE).

`run_check` raises only `CheckError`, before anything is sent, for a request
the configuration cannot serve (unknown provider or seed). Network trouble,
refusals and timeouts are data in the report; an unexpected failure inside the
check ends it with status `error` rather than an exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from monitor.checks.dns import lookup_domain
from monitor.checks.errors import CheckError
from monitor.checks.model import (
    CheckReport,
    CheckRequest,
    CheckStatus,
    DnsReport,
    Progress,
    SeedReport,
    Stage,
    domain_of,
)
from monitor.checks.verdict import decide
from monitor.config import Config, ProbeMode, ProviderConfig
from monitor.config.models import MailboxConfig
from monitor.ids import new_id
from monitor.posture.assess import Evidence, PostureOptions, PostureReport, assess
from monitor.posture.dane import Seen
from monitor.posture.resolver import Resolver
from monitor.probe.engine import run_probe
from monitor.probe.message import DEFAULT_TEXT, MessageSpec
from monitor.probe.result import ProbeResult
from monitor.receive import PendingToken, ReceiveOptions, wait_for_arrival
from monitor.receive.poller import Backends
from monitor.receive.result import ReceiveResult

log = logging.getLogger(__name__)

DEFAULT_SUBJECT = "Delivery Monitor pre-campaign check"
MAX_PARALLEL_SENDS = 4
ProgressCallback = Callable[[CheckReport], Awaitable[None]]


def new_check_id() -> str:
    """Time-ordered like run ids, so a listing sorts by creation."""
    return new_id("chk_")


def resolve(config: Config, request: CheckRequest) -> tuple[ProviderConfig,
                                                             list[MailboxConfig]]:
    """The provider (set to `send`) and seed mailboxes; CheckError naming what is unknown."""
    provider = config.provider(request.provider)
    if provider is None:
        known = ", ".join(p.name for p in config.providers) or "none configured"
        raise CheckError("unknown_provider", f"no provider named {request.provider!r} "
                         f"(known: {known})", {"provider": request.provider})
    unknown = [s for s in request.seeds if config.mailbox(s) is None]
    if unknown:
        known = ", ".join(m.name for m in config.mailboxes) or "none configured"
        raise CheckError("unknown_seed", f"no mailbox named {', '.join(map(repr, unknown))} "
                         f"(known: {known})", {"seeds": unknown})
    if provider.mode is not ProbeMode.SEND:
        # A check always sends, whatever the provider's scheduled probes do.
        provider = provider.model_copy(update={"mode": ProbeMode.SEND})
    seeds = [m for s in request.seeds if (m := config.mailbox(s)) is not None]
    return provider, seeds


def pending_report(check_id: str, request: CheckRequest, config: Config | None = None,
                   *, now: datetime | None = None) -> CheckReport:
    """The report of a check accepted but not started (what POST answers with)."""
    addresses = {m.name: m.address for m in config.mailboxes} if config else {}
    return CheckReport(
        id=check_id, status=CheckStatus.PENDING, provider=request.provider,
        sender=request.sender, created_at=now or datetime.now(UTC),
        progress=Progress(seeds_total=len(request.seeds)),
        seeds=[SeedReport(mailbox=s, address=addresses.get(s, "")) for s in request.seeds])


async def run_check(config: Config, request: CheckRequest, *, check_id: str,
                    dns_nameserver: tuple[str, int] | None = None,
                    receive_options: ReceiveOptions | None = None,
                    on_progress: ProgressCallback | None = None,
                    receive_backends: Backends | None = None,
                    dns_timeout: float = 2.0, dns_lifetime: float = 5.0,
                    created_at: datetime | None = None,
                    resume: CheckReport | None = None,
                    posture_options: PostureOptions | None = None) -> CheckReport:
    """Run the check to the end and return its report (status `done` or `error`).

    Raises `CheckError` (before sending anything) for an unknown provider or
    seed. `on_progress` gets a snapshot when the check starts, when a seed's
    message is accepted (its token is then on record) and after each seed
    settles; an exception it raises is logged and the check goes on.

    `resume` is the saved report of a check another replica started: seeds it
    finished are kept, seeds whose message was accepted are waited for, not
    sent again, and only the others are sent.
    """
    provider, mailboxes = resolve(config, request)
    run = _Run(config, request, provider, mailboxes, check_id=check_id,
               created_at=created_at, on_progress=on_progress,
               options=receive_options, backends=receive_backends, resume=resume)
    dns_task = asyncio.create_task(lookup_domain(
        domain_of(request.sender), nameserver=dns_nameserver, attempt_timeout=dns_timeout,
        lifetime=dns_lifetime))
    try:
        await run.publish()
        await asyncio.gather(*(run.seed(i) for i in range(len(mailboxes))))
        run.dns = await dns_task
        # After the seeds: DKIM and the sending IP need a message that arrived, DANE the
        # certificate a send saw.
        run.posture = await assess(
            domain_of(request.sender), Resolver(dns_nameserver, timeout=dns_timeout,
                                                lifetime=dns_lifetime),
            posture_options or PostureOptions.from_settings(config.settings), run.evidence())
    except Exception as exc:  # the report must still end; the check never raises here
        log.exception("check %s failed", check_id)
        report = run.snapshot(status=CheckStatus.ERROR, error=f"internal error: {exc!r}")
        await run.publish(report)
        return report
    finally:
        dns_task.cancel()  # a no-op once it is done; stops it when the check is cancelled
    verdict, reasons, warnings = decide(run.seeds, run.dns, run.posture)
    report = run.snapshot(status=CheckStatus.DONE, verdict=verdict, reasons=reasons,
                          warnings=warnings)
    await run.publish(report)
    return report


class _Run:
    """The mutable state of one check; every snapshot is an immutable CheckReport."""

    def __init__(self, config: Config, request: CheckRequest, provider: ProviderConfig,
                 mailboxes: list[MailboxConfig], *, check_id: str,
                 created_at: datetime | None, on_progress: ProgressCallback | None,
                 options: ReceiveOptions | None,
                 backends: Backends | None, resume: CheckReport | None = None) -> None:
        self.config, self.request, self.provider = config, request, provider
        self.mailboxes = mailboxes
        self.check_id = check_id
        self.started_at = (resume.started_at if resume else None) or datetime.now(UTC)
        self.created_at = (resume.created_at if resume else created_at) or self.started_at
        self.on_progress = on_progress
        # Posture verifies DKIM on the first seed message that arrives: keep it whole.
        self.options = dataclasses.replace(options or ReceiveOptions(), keep_message=True)
        self.backends = backends
        saved = {s.mailbox: s for s in resume.seeds} if resume else {}
        self.seeds = [saved.get(m.name) or SeedReport(mailbox=m.name, address=m.address)
                      for m in mailboxes]
        self.dns: DnsReport | None = None
        self.posture: PostureReport | None = None
        self.seen: Seen | None = None  # the provider's certificate, as a send saw it
        self.message: bytes | None = None  # the first seed message that arrived, raw
        self.send_slots = asyncio.Semaphore(MAX_PARALLEL_SENDS)
        self.publishing = asyncio.Lock()  # snapshots go out in order, one at a time

    def snapshot(self, *, status: CheckStatus = CheckStatus.RUNNING, **final: object
                 ) -> CheckReport:
        done = sum(s.stage is Stage.DONE for s in self.seeds)
        finished = status in (CheckStatus.DONE, CheckStatus.ERROR)
        if finished:
            stage = Stage.DONE
        elif any(s.stage in (Stage.QUEUED, Stage.SENDING) for s in self.seeds):
            stage = Stage.SENDING
        else:
            stage = Stage.WAITING
        return CheckReport.model_validate({
            "id": self.check_id, "status": status, "provider": self.request.provider,
            "sender": self.request.sender, "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC) if finished else None,
            "progress": Progress(seeds_total=len(self.seeds), seeds_done=done, stage=stage),
            "seeds": list(self.seeds), "dns": self.dns, "posture": self.posture, **final})

    def evidence(self) -> Evidence:
        return Evidence(message=self.message, probed=(self.seen,) if self.seen else ())

    async def publish(self, report: CheckReport | None = None) -> None:
        if self.on_progress is None:
            return
        async with self.publishing:
            try:
                await self.on_progress(report or self.snapshot())
            except Exception:  # a failing observer must not fail the check
                log.exception("check %s: progress callback failed", self.check_id)

    async def seed(self, index: int) -> None:
        mailbox, current = self.mailboxes[index], self.seeds[index]
        if current.stage is Stage.DONE:  # finished before a takeover
            return
        token: str | None
        run_id: str | None
        accepted_at: datetime | None
        try:
            if current.accepted and current.token and current.accepted_at:
                # Accepted before a takeover: wait for that message, never send twice.
                token, run_id, accepted_at = current.token, current.run_id, current.accepted_at
            else:
                async with self.send_slots:
                    self._update(index, stage=Stage.SENDING)
                    result = await run_probe(self.provider, self.config, message=MessageSpec(
                        sender=self.request.sender, recipients=(mailbox.address,),
                        subject=self.request.subject or DEFAULT_SUBJECT,
                        text=self.request.text if self.request.text is not None
                        else DEFAULT_TEXT,
                        html=self.request.html))
                self._update(index, **_sent(result))
                self._saw(result)
                token, run_id, accepted_at = result.token, result.run_id, result.accepted_at
            if accepted_at is not None and token is not None:
                self._update(index, stage=Stage.WAITING)
                await self.publish()  # the token is on record before the wait
                pending = PendingToken(
                    token=token, run_id=run_id or "", provider=self.provider.name,
                    mailbox=mailbox.name, accepted_at=accepted_at,
                    deadline=accepted_at + mailbox.deliver_within)
                received = await wait_for_arrival(self.config, pending, options=self.options,
                                                  backends=self.backends)
                self._update(index, **_received(received))
                if self.message is None and received.arrived:
                    self.message = received.message
        except Exception as exc:  # one seed's bug must not lose the others' results
            log.exception("check %s: seed %s failed", self.check_id, mailbox.name)
            self._update(index, error=f"internal error: {exc!r}")
        self._update(index, stage=Stage.DONE)
        await self.publish()

    def _saw(self, result: ProbeResult) -> None:
        cert = result.tls.certificate if result.tls else None
        if self.seen is None and cert is not None and not _is_ip(self.provider.host):
            # DANE names a host: a provider configured by address has no TLSA to match.
            self.seen = Seen.from_certificate(self.provider.host, self.provider.port, cert)

    def _update(self, index: int, **fields: object) -> None:
        self.seeds[index] = self.seeds[index].model_copy(update=fields)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _sent(result: ProbeResult) -> dict[str, object]:
    failure = result.failure
    error = None
    if failure is not None:
        error = result.diagnosis.summary if result.diagnosis else failure.text
    return {"run_id": result.run_id, "token": result.token, "message_id": result.message_id,
            "smtp": list(result.steps), "accepted": result.accepted_at is not None,
            "accepted_at": result.accepted_at,
            "failed_step": result.failed_step.value if result.failed_step else None,
            "failure_class": result.failure_class, "error": error}


def _received(result: ReceiveResult) -> dict[str, object]:
    return {"receive_status": result.status, "arrived": result.arrived,
            "latency_ms": result.latency_ms, "folder": result.folder,
            "placement": result.placement, "spf": result.spf, "dkim": result.dkim,
            "dmarc": result.dmarc, "error": result.error}
