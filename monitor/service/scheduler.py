"""APScheduler 3 in memory for the periodic chores: heartbeat, takeover, receive,
retention, and one job per watched domain (posture).

Provider slots are not APScheduler jobs: one slot clock fires this replica's
share (service/slots.py). No persistent job store (APScheduler's FAQ: job
stores must not be shared between processes); the schedule is rebuilt from
config on every start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import store
from monitor.service.context import AppContext
from monitor.service.gauges import refresh_gauges
from monitor.service.outage import unreachable
from monitor.service.partition import HEARTBEAT, heartbeat
from monitor.service.posture import run_posture
from monitor.service.probing import record_held, take_over_slots
from monitor.status.rollup import RETENTION as ROLLUP_RETENTION

log = logging.getLogger("monitor.scheduler")

# Only mailboxes with pending tokens are opened, so this costs nothing when idle; it
# bounds how late an arrival can be seen (the latency without a Received timestamp).
RECEIVE_EVERY = timedelta(seconds=2)
RETENTION_EVERY = timedelta(hours=1)
# How soon a check whose replica died is resumed once its lease ran out.
CHECKS_EVERY = timedelta(seconds=10)
# How soon a dead replica's claimed slot is noticed once its lease ran out.
TAKEOVER_EVERY = timedelta(seconds=2)
# The first posture run after a start: once the first heartbeats have said who runs it.
POSTURE_FIRST = timedelta(seconds=20)
# The outbox and dead-letter gauges: two grouped counts, about a Prometheus scrape interval.
GAUGES_EVERY = timedelta(seconds=15)


def build_scheduler(ctx: AppContext,
                    extra_jobs: dict[str, tuple[Callable[[], Awaitable[object]],
                                                timedelta]] | None = None) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
        "coalesce": True,  # missed runs collapse into one
        "max_instances": 1,  # a slow pass is not started twice
        "misfire_grace_time": 30,
    })
    now = ctx.clock()
    posture_every = ctx.config.settings.posture_interval.total_seconds()
    for domain in ctx.config.posture_domains():
        scheduler.add_job(guarded, IntervalTrigger(seconds=posture_every),
                          args=(ctx, f"posture {domain}", _posture_job(ctx, domain)),
                          id=f"posture:{domain}", name=domain,
                          next_run_time=now + POSTURE_FIRST)
    scheduler.add_job(guarded, IntervalTrigger(seconds=HEARTBEAT.total_seconds()),
                      args=(ctx, "heartbeat", lambda: heartbeat(ctx)), id="heartbeat",
                      name="heartbeat", next_run_time=now)
    scheduler.add_job(guarded, IntervalTrigger(seconds=TAKEOVER_EVERY.total_seconds()),
                      args=(ctx, "slot takeover", lambda: take_over_slots(ctx)),
                      id="takeover", name="takeover",
                      next_run_time=now + timedelta(seconds=TAKEOVER_EVERY.total_seconds()))
    scheduler.add_job(guarded, IntervalTrigger(seconds=RETENTION_EVERY.total_seconds()),
                      args=(ctx, "retention", lambda: prune(ctx)), id="retention", name="retention",
                      next_run_time=now + timedelta(seconds=30))
    scheduler.add_job(guarded, IntervalTrigger(seconds=GAUGES_EVERY.total_seconds()),
                      args=(ctx, "gauges", lambda: refresh_gauges(ctx)), id="gauges",
                      next_run_time=now + timedelta(seconds=1))
    for name, (job, every) in (extra_jobs or {}).items():
        scheduler.add_job(guarded, IntervalTrigger(seconds=every.total_seconds()),
                          args=(ctx, name, job), id=name, name=name,
                          next_run_time=now + timedelta(seconds=1))
    return scheduler


def _posture_job(ctx: AppContext, domain: str) -> Callable[[], Awaitable[object]]:
    return lambda: run_posture(ctx, domain)


async def guarded(ctx: AppContext, name: str, job: Callable[[], Awaitable[object]]) -> None:
    """Run a periodic job; the database being away is counted, not a traceback."""
    try:
        await job()
    except asyncio.CancelledError:
        # A stop shut the scheduler down with this chore mid-pass: expected, and not
        # worth APScheduler's ERROR line with a traceback. Its work is redone at start.
        log.debug("periodic job cancelled at shutdown", extra={"action": "job_cancelled",
                                                               "job": name})
        return
    except Exception as exc:
        if not unreachable(exc):
            raise  # a bug: APScheduler logs it with its traceback
        ctx.outage.failed(name, exc)
        ctx.metrics.database_failures.labels(name).inc()
    else:
        ctx.outage.reached()
        await record_held(ctx)  # whichever job sees the database back first


async def prune(ctx: AppContext) -> None:
    now = ctx.clock()
    before = now - ctx.config.settings.retention
    # Rollups are kept 400 days, or as long as the raw runs when those are kept longer.
    rollups_before = now - max(ROLLUP_RETENTION, ctx.config.settings.retention)
    async with ctx.sessions() as session:
        counts = await store.retention.prune(session, before, rollups_before=rollups_before)
    log.info("retention", extra={"action": "retention", "before": before.isoformat(), **counts})
