"""The scheduled posture job: one per watched domain, every settings.posture_interval.

A domain's job runs on the one live replica it falls to (the providers' rendezvous
hashing, `partition.mine`, keyed by the domain). The new state and the events its
change raised are written in one transaction, as a compare-and-set on the stored
version: should two replicas both run a domain while their lists of who is alive
differ for a moment, one writes and the other's result is dropped, so each change
is raised once. Events go through the same outbox as probe events.

DANE is matched against the certificate of the last probe of each provider that
sends from the domain; DKIM and the sending IP need a seed message, which only a
pre-campaign check has.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from monitor import store
from monitor.events.domain import PostureState, detect_posture
from monitor.events.model import Event
from monitor.posture.assess import Evidence, PostureOptions, assess
from monitor.posture.dane import Seen
from monitor.posture.resolver import Resolver
from monitor.probe.result import ProbeResult
from monitor.service.context import AppContext
from monitor.service.partition import mine

log = logging.getLogger("monitor.posture")


async def run_posture(ctx: AppContext, domain: str) -> list[Event]:
    """Check `domain` if it is this replica's; the events raised (and stored)."""
    if not mine(ctx, f"domain:{domain}"):
        return []
    settings = ctx.config.settings
    evidence = Evidence(probed=await _probed(ctx, domain))
    report = await assess(domain, Resolver(settings.dns_nameserver()),
                          PostureOptions.from_settings(settings), evidence)
    now = ctx.clock()
    async with ctx.sessions() as session:
        row = await store.posture.load(session, domain)
        previous = None
        if row is not None:
            try:
                previous = PostureState.model_validate(row.state)
            except ValidationError:  # written by another version: a new baseline
                previous = None
        state, events = detect_posture(domain, previous, report, now)
        saved = await store.posture.save(session, domain, state.model_dump(mode="json"),
                                         row.version if row is not None else None, events, now)
    log.info("posture", extra={"action": "posture", "domain": domain, "saved": saved,
                               "findings": len(report.findings), "events": len(events),
                               "errors": len(report.errors)})
    return events if saved else []


async def _probed(ctx: AppContext, domain: str) -> tuple[Seen, ...]:
    """The certificate the last probe of each provider sending from `domain` saw."""
    providers = [p for p in ctx.config.providers
                 if p.sender and p.sender.rpartition("@")[2].lower() == domain]
    seen: list[Seen] = []
    async with ctx.sessions() as session:
        for provider in providers:
            row = await store.runs.last_run(session, provider.name)
            if row is None:
                continue
            try:
                result = ProbeResult.model_validate(row.result)
            except ValidationError:
                continue
            cert = result.tls.certificate if result.tls else None
            if cert is not None and cert.spki_sha256:
                seen.append(Seen.from_certificate(provider.host, provider.port, cert))
    return tuple(seen)
