"""Run a provider's probe for a slot and record it: run, state, events, outbox — one transaction."""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from monitor import store
from monitor.config import ProviderConfig
from monitor.events.detect import detect
from monitor.events.model import Event
from monitor.probe import ProbeResult, run_probe
from monitor.probe.summary import summarize
from monitor.receive import pending_tokens
from monitor.service.context import AppContext, HeldResult
from monitor.service.outage import unreachable
from monitor.service.partition import mine

log = logging.getLogger("monitor.probing")

MAX_JITTER = 5.0  # seconds
LEASE_MARGIN = timedelta(seconds=5)


def slot_offset(provider: ProviderConfig) -> float:
    """A stable per-provider phase, so providers with one interval don't all fire at once."""
    interval = provider.interval.total_seconds()
    return (zlib.crc32(provider.name.encode()) % 10_000) / 10_000 * interval


def slot_for(provider: ProviderConfig, at: datetime) -> int:
    """Which scheduled slot `at` falls in; identical on every replica."""
    interval = provider.interval.total_seconds()
    return int((at.timestamp() - slot_offset(provider)) // interval)


async def run_slot(ctx: AppContext, provider: ProviderConfig,
                   slot: int | None = None) -> ProbeResult | None:
    """Claim `slot` (default: the current one) in the database; only the winner probes."""
    if not mine(ctx, provider.name):
        return None  # another live replica's share: no claim attempt, no database call
    ctx.track_current()  # a claimed slot is run to the end, even during shutdown
    now = ctx.clock()
    slot = slot_for(provider, now) if slot is None else slot
    ctx.metrics.scheduler_lateness.observe(lateness(provider, slot, now))
    lease = slot_lease(provider)
    try:
        claimed = await ctx.writer.run(lambda session: store.runs.claim_slot(
            session, provider.name, slot, ctx.replica, now, lease))
    except Exception as exc:
        if not unreachable(exc):
            raise
        ctx.outage.failed("slot", exc)
        ctx.metrics.slots_skipped.labels(provider.name).inc()
        return None
    ctx.outage.reached()
    await record_held(ctx)
    if not claimed:
        ctx.metrics.claims_lost.inc()
        log.debug("slot taken", extra={"action": "slot_skipped",
                                       "provider": provider.name, "slot": slot})
        return None
    # A little jitter, after the claim so the slot is already decided: probes of many
    # monitors against one provider don't all arrive on the same second.
    await asyncio.sleep(random.uniform(0, _jitter(provider)))
    return await probe_and_record(ctx, provider, slot)


def slot_boundary(provider: ProviderConfig, slot: int) -> datetime:
    """When `slot` of `provider` begins (the inverse of slot_for)."""
    interval = provider.interval.total_seconds()
    return datetime.fromtimestamp(slot * interval + slot_offset(provider), UTC)


def lateness(provider: ProviderConfig, slot: int, now: datetime) -> float:
    """Seconds between the slot's boundary (when the slot clock fires it) and `now`."""
    return max(0.0, (now - slot_boundary(provider, slot)).total_seconds())


def _jitter(provider: ProviderConfig) -> float:
    return min(provider.interval.total_seconds() / 10, MAX_JITTER)


def slot_lease(provider: ProviderConfig) -> timedelta:
    """How long a claimant has to record its run: the jitter, the whole probe, a margin."""
    return timedelta(seconds=_jitter(provider)) + provider.timeout + LEASE_MARGIN


async def take_over_slots(ctx: AppContext) -> int:
    """Run the slots whose claimant died before recording them, while still current.

    A claim is a lease (`slot_lease`): a replica killed between claiming and
    recording leaves it open, and after the lease any replica may take it over —
    but only within the slot's own interval, where the run still means something.
    """
    now = ctx.clock()
    if not ctx.config.providers:
        return 0
    # Only a claim made within the longest interval can still be in its slot.
    since = now - max(p.interval for p in ctx.config.providers)
    async with ctx.sessions() as session:
        stale = await store.runs.open_claims(session, now, since)
    taken = 0
    for claim in stale:
        provider = ctx.config.provider(claim.provider)
        if claim.claimed_by == ctx.replica:
            continue  # ours, late (an outage): its held result records it, not a rerun
        if provider is None or slot_for(provider, now) != claim.slot:
            continue  # removed from config, or the next slot has begun: its run is due
        async with ctx.sessions() as session:
            if not await store.runs.take_over_slot(session, claim, ctx.replica, now,
                                                slot_lease(provider)):
                continue  # another replica took it first
        log.info("slot taken over", extra={"action": "slot_taken_over",
                                           "provider": provider.name, "slot": claim.slot,
                                           "from": claim.claimed_by})
        taken += 1
        await probe_and_record(ctx, provider, claim.slot)
    return taken


async def probe_and_record(ctx: AppContext, provider: ProviderConfig,
                           slot: int | None = None) -> ProbeResult:
    ctx.track_current()
    result = await run_probe(provider, ctx.config)
    try:
        events = await record(ctx, provider, result, slot)
    except Exception as exc:
        if not unreachable(exc):
            raise
        _hold(ctx, HeldResult(provider.name, result, slot), exc)
        events = []
    else:
        ctx.outage.reached()
    ctx.metrics.observe_probe(result)
    for event in events:
        ctx.metrics.events.labels(event.type.value).inc()
    failure = result.failure
    log.info("probe finished", extra={
        "action": "probe", "provider": provider.name, "run_id": result.run_id, "ok": result.ok,
        "duration_ms": result.duration_ms,
        "step": failure.step.value if failure else None,
        "code": failure.code if failure else None,
        "class": result.failure_class.value if result.failure_class else None,
        "events": [e.type.value for e in events]})
    return result


def _hold(ctx: AppContext, held: HeldResult, exc: BaseException) -> None:
    """Keep a result the database could not take; the oldest goes when the queue is full."""
    if len(ctx.held) == ctx.held.maxlen:
        ctx.metrics.results_dropped.inc()
    ctx.held.append(held)
    ctx.metrics.results_held.set(len(ctx.held))
    ctx.outage.failed("record", exc)


async def record_held(ctx: AppContext) -> int:
    """Record the results held during an outage, oldest first; stops if it is not over."""
    if not ctx.held:
        return 0
    recorded = 0
    async with ctx.held_lock:
        while ctx.held:
            held = ctx.held[0]
            provider = ctx.config.provider(held.provider)
            try:
                if provider is not None:  # a provider removed meanwhile: nothing to record
                    await record(ctx, provider, held.result, held.slot)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                ctx.outage.failed("record", exc)
                break
            ctx.held.popleft()
            recorded += 1
        ctx.metrics.results_held.set(len(ctx.held))
    if recorded:
        log.info("held results recorded", extra={"action": "held_recorded",
                                                 "count": recorded, "left": len(ctx.held)})
    return recorded


async def record(ctx: AppContext, provider: ProviderConfig, result: ProbeResult,
                 slot: int | None = None) -> list[Event]:
    """Record the run, its state, rollup, events and outbox rows in one transaction."""
    now = ctx.clock()
    summary = summarize(result)
    pending = pending_tokens(result, ctx.config)

    def write(session: Session) -> list[Event] | None:
        if slot is not None and not store.runs.finish_slot(session, provider.name, slot,
                                                           ctx.replica):
            return None
        previous = store.runs.load_state(session, provider.name, now)
        store.runs.add_run(session, result, slot)
        store.rollups.add_run(session, result)
        events: list[Event] = []
        # A run held through an outage while another replica recorded a newer one (ids
        # are time-ordered) is kept as history, but the state and events follow the
        # newer run, so a stale failure cannot undo a later recovery.
        if previous.last_run_id is None or result.run_id >= previous.last_run_id:
            state, events = detect(previous, result, provider.thresholds, now)
            store.runs.save_state(session, provider.name, state, now, summary)
            store.events.add_events(session, events, now)
        for token in pending:
            store.tokens.add_pending(
                session, token=token.token, run_id=token.run_id, provider=token.provider,
                mailbox=token.mailbox, accepted_at=token.accepted_at, deadline=token.deadline)
        return events

    events = await ctx.writer.run(write)
    if events is None:
        # Our lease ran out (a long database outage) and another replica took the slot
        # over: its run stands, so two runs of one slot are never recorded.
        log.warning("slot was taken over; this run is not recorded", extra={
            "action": "slot_lost", "provider": provider.name, "slot": slot})
        return []
    if events:
        ctx.outbox_wake.set()  # committed: the outbox sends now, not at its next poll
    return events
