"""What each status page shows, read from the store and shaped for its template.

The views carry data, never markup, except the SVG that monitor.status.svg built
from numbers. Text that came from an SMTP or IMAP server (banners, replies,
diagnosis lines quoting them) stays plain `str`: the templates autoescape it.
Nothing secret is read into a view: providers by name, host and port only;
subscriptions by name, kind and counts (never their URL, secret or routing key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from monitor import store
from monitor.config import ProviderConfig
from monitor.service.context import AppContext
from monitor.status import histogram, incidents, rollup, svg
from monitor.status.cache import UptimeCache
from monitor.status.incidents import EventFact, Incident
from monitor.status.rollup import HOUR, PAGE_WINDOWS, WINDOWS, HourCounts, Uptime
from monitor.store.tables import ProviderStateRow, ReceiveResultRow, RunRow

DAY, WEEK = timedelta(days=1), timedelta(days=7)
TIMELINE_RUNS = 20
RECENT_ARRIVALS = 10
INCIDENT_EVENTS = 2000  # the newest failure/recovery events /incidents reads


def state_of(row: ProviderStateRow | None) -> str:
    """up | down | degraded | delivery failing | unknown; the worst one wins."""
    if row is None or not row.state:
        return "unknown"
    s = row.state
    if s.get("health") == "down":
        return "down"
    if s.get("delivery") == "down":
        return "delivery failing"
    if s.get("degraded"):
        return "degraded"
    return "up" if s.get("health") == "up" else "unknown"


def css_of(state: str) -> str:
    return state.replace(" ", "-")


@dataclass(frozen=True)
class Failure:
    step: str
    code: str
    text: str  # the server's reply: attacker-controlled
    failure_class: str
    diagnosis: str


@dataclass(frozen=True)
class LastRun:
    at: datetime
    ok: bool
    duration_ms: float
    failure: Failure | None
    certificate_days: int | None
    # Both as the server's certificate says: attacker-controlled.
    certificate_subject: str = ""
    certificate_issuer: str = ""
    tls_verified: bool | None = None
    tls_error: str | None = None


def _reply(step: Mapping[str, Any]) -> str:
    return " ".join(str(step[k]) for k in ("code", "enhanced_code") if step.get(k) is not None)


def last_run_of(row: RunRow | None, now: datetime) -> LastRun | None:
    if row is None:
        return None
    result = row.result
    failure = None
    if not row.ok:
        failed: dict[str, Any] = next(
            (s for s in result.get("steps", ()) if s.get("failure_class")), {})
        diagnosis = result.get("diagnosis") or {}
        failure = Failure(step=str(failed.get("step") or row.failed_step or "?"),
                          code=_reply(failed), text=str(failed.get("text") or ""),
                          failure_class=str(row.failure_class or ""),
                          diagnosis=str(diagnosis.get("summary") or ""))
    days = None
    tls = result.get("tls") or {}
    certificate = tls.get("certificate") or {}
    if not_after := certificate.get("not_after"):
        days = (datetime.fromisoformat(not_after) - now).days
    return LastRun(at=row.started_at, ok=row.ok, duration_ms=row.duration_ms, failure=failure,
                   certificate_days=days,
                   certificate_subject=str(certificate.get("subject") or ""),
                   certificate_issuer=str(certificate.get("issuer") or ""),
                   tls_verified=tls.get("verified") if tls else None,
                   tls_error=tls.get("verify_error"))


@dataclass(frozen=True)
class ProviderSummary:
    name: str
    state: str
    last: LastRun | None
    uptimes: Sequence[Uptime]
    sparkline: Markup
    p95_24h: float | None
    mailboxes_failing: Sequence[str] = ()  # seed mailboxes whose last message went wrong

    @property
    def css(self) -> str:
        return css_of(self.state)


def _failing_mailboxes(row: ProviderStateRow | None) -> list[str]:
    mailboxes = (row.state.get("mailboxes") if row else None) or {}
    return sorted(name for name, ok in mailboxes.items() if not ok)


@dataclass(frozen=True)
class SubscriptionHealth:
    name: str
    kind: str
    enabled: bool
    disabled_reason: str | None
    queued: int
    dead: int


@dataclass(frozen=True)
class Overview:
    now: datetime
    providers: Sequence[ProviderSummary]
    subscriptions: Sequence[SubscriptionHealth]

    def count(self, state: str) -> int:
        return sum(p.state == state for p in self.providers)


def hourly(hours: Mapping[datetime, HourCounts], start: datetime, count: int,
           q: float, field: str = "probe_ms") -> list[svg.Point]:
    """The q-quantile of each hour from `start`; None for an hour without a row."""
    out: list[svg.Point] = []
    for i in range(count):
        at = start + i * HOUR
        counts = hours.get(at)
        out.append((at, histogram.quantile(getattr(counts, field), q) if counts else None))
    return out


def page_uptimes() -> UptimeCache:
    """The front page's uptime sums, kept between views (monitor.status.cache)."""
    return UptimeCache({name: WINDOWS[name] for name in PAGE_WINDOWS})


async def overview(ctx: AppContext, now: datetime, cache: UptimeCache) -> Overview:
    day_start = WINDOWS["24h"].start(now)
    async with ctx.sessions() as session:
        states = {s.provider: s for s in await store.runs.states(session)}
        last = await store.runs.last_runs(session)
        uptimes = await cache.uptimes(session, now)
        day = await store.rollups.probe_histograms(session, day_start)
        subscriptions = await store.subscriptions.summaries(session)
        counts = await store.outbox.counts_by_subscription(session)
    providers = []
    for p in ctx.config.providers:
        hours = day.get(p.name, {})
        points = [(at, histogram.quantile(hours[at], 0.5) if at in hours else None)
                  for at in (day_start + i * HOUR for i in range(24))]
        empty = {w: rollup.uptime_from_totals(WINDOWS[w], 0, 0, 0) for w in PAGE_WINDOWS}
        providers.append(ProviderSummary(
            name=p.name, state=state_of(states.get(p.name)),
            last=last_run_of(last.get(p.name), now),
            uptimes=[uptimes.get(p.name, empty)[w] for w in PAGE_WINDOWS],
            sparkline=svg.sparkline([ms for _, ms in points], label=f"{p.name} p50 latency"),
            p95_24h=histogram.quantile(histogram.merge(hours.values()), 0.95),
            mailboxes_failing=_failing_mailboxes(states.get(p.name))))
    subs = [SubscriptionHealth(name=name, kind=kind, enabled=enabled, disabled_reason=reason,
                               queued=counts.get(sub_id, {}).get("pending", 0),
                               dead=counts.get(sub_id, {}).get("dead", 0))
            for sub_id, name, kind, enabled, reason in subscriptions]
    return Overview(now=now, providers=providers, subscriptions=subs)


@dataclass(frozen=True)
class StepCell:
    step: str
    code: str
    latency_ms: float
    ok: bool
    text: str  # the server's reply: attacker-controlled


@dataclass(frozen=True)
class TimelineRun:
    at: datetime
    ok: bool
    duration_ms: float
    steps: Sequence[StepCell]


@dataclass(frozen=True)
class Arrival:
    checked_at: datetime
    mailbox: str
    status: str
    latency_ms: float | None
    folder: str | None  # named by the IMAP server: attacker-controlled
    placement: str | None
    spf: str | None
    dkim: str | None
    dmarc: str | None


@dataclass(frozen=True)
class ProviderPage:
    now: datetime
    name: str
    host: str
    port: int
    mode: str
    tls: str
    state: str
    last: LastRun | None
    banner: str  # the connect step's 220 text: attacker-controlled
    uptimes: Sequence[Uptime]
    chart_24h: Markup
    chart_7d: Markup
    receive_chart: Markup
    receive_p50: float | None
    receive_p95: float | None
    delivery: Mapping[str, int]
    timeline: Sequence[TimelineRun]
    incidents: Sequence[Incident]
    arrivals: Sequence[Arrival]

    @property
    def css(self) -> str:
        return css_of(self.state)


def _timeline(rows: Sequence[RunRow]) -> list[TimelineRun]:
    return [TimelineRun(at=r.started_at, ok=r.ok, duration_ms=r.duration_ms, steps=[
        StepCell(step=str(s.get("step")) + (f" {s['recipient']}" if s.get("recipient") else ""),
                 code=_reply(s), latency_ms=float(s.get("latency_ms") or 0),
                 ok=bool(s.get("ok", True)), text=str(s.get("text") or ""))
        for s in r.result.get("steps", ())]) for r in rows]


def _arrival(row: ReceiveResultRow) -> Arrival:
    r = row.result
    return Arrival(checked_at=row.checked_at, mailbox=row.mailbox, status=str(r.get("status")),
                   latency_ms=row.latency_ms, folder=r.get("folder"), placement=row.placement,
                   spf=r.get("spf"), dkim=r.get("dkim"), dmarc=r.get("dmarc"))


def facts(rows: Sequence[Any]) -> list[EventFact]:
    return [EventFact(type=e.type, provider=e.provider or "", timestamp=e.timestamp,
                      data=e.data) for e in rows]


async def provider_page(ctx: AppContext, provider: ProviderConfig,
                        now: datetime) -> ProviderPage:
    week_start = WINDOWS["7d"].start(now)
    async with ctx.sessions() as session:
        state = await store.runs.state(session, provider.name)
        runs = await store.runs.recent_runs(session, provider.name, limit=TIMELINE_RUNS)
        durations = await store.runs.durations(session, provider.name, now - DAY)
        hours = await store.rollups.hours(session, provider.name, week_start)
        uptimes = await store.rollups.uptimes(session, WINDOWS, now, provider=provider.name)
        events = await store.events.list_events(session, provider=provider.name,
                                                types=incidents.TYPES, limit=INCIDENT_EVENTS)
        arrivals = await store.tokens.recent_results(session, provider.name, RECENT_ARRIVALS)
    empty = {w: rollup.uptime_from_totals(WINDOWS[w], 0, 0, 0) for w in WINDOWS}
    last = last_run_of(runs[0] if runs else None, now)
    banner = ""
    if runs:
        connect: dict[str, Any] = next(
            (s for s in runs[0].result.get("steps", ()) if s.get("step") == "connect"), {})
        banner = str(connect.get("text") or "")
    day = svg.chart([svg.Series("each run", "run", _runs_with_gaps(durations, provider))],
                    now - DAY, now, title=f"{provider.name}: probe duration, last 24 hours")
    week = svg.chart([svg.Series("p50", "p50", hourly(hours, week_start, 7 * 24, 0.5)),
                      svg.Series("p95", "p95", hourly(hours, week_start, 7 * 24, 0.95))],
                     week_start, now, title=f"{provider.name}: probe duration per hour, 7 days",
                     ticks=DAY, tick_format="%a %d")
    receive = svg.chart(
        [svg.Series("p50", "p50", hourly(hours, week_start, 7 * 24, 0.5, "receive_ms")),
         svg.Series("p95", "p95", hourly(hours, week_start, 7 * 24, 0.95, "receive_ms"))],
        week_start, now, title=f"{provider.name}: send-to-inbox round trip per hour, 7 days",
        ticks=DAY, tick_format="%a %d")
    merged = rollup.merge(hours.values())
    return ProviderPage(
        now=now, name=provider.name, host=provider.host, port=provider.port,
        mode=provider.mode.value, tls=provider.tls.value, state=state_of(state), last=last,
        banner=banner,
        uptimes=list(uptimes.get(provider.name, empty).values()),
        chart_24h=day, chart_7d=week, receive_chart=receive,
        receive_p50=histogram.quantile(merged.receive_ms, 0.5),
        receive_p95=histogram.quantile(merged.receive_ms, 0.95),
        delivery=merged.delivery, timeline=_timeline(runs),
        incidents=incidents.incidents(facts(events)),
        arrivals=[_arrival(a) for a in arrivals])


def _runs_with_gaps(durations: Sequence[tuple[datetime, float, bool]],
                    provider: ProviderConfig) -> list[svg.Point]:
    """Each run's duration, with a break wherever runs stopped for over two intervals."""
    out: list[svg.Point] = []
    gap = 2 * provider.interval
    for at, ms, _ in durations:
        if out and at - out[-1][0] > gap:
            out.append((out[-1][0] + provider.interval, None))
        out.append((at, ms))
    return out


@dataclass(frozen=True)
class IncidentPage:
    now: datetime
    incidents: Sequence[Incident]
    since: datetime | None  # the oldest event read: history before it is past retention


async def incident_page(ctx: AppContext, now: datetime) -> IncidentPage:
    async with ctx.sessions() as session:
        events = await store.events.list_events(session, types=incidents.TYPES,
                                                limit=INCIDENT_EVENTS)
    found = incidents.incidents(facts(events))
    return IncidentPage(now=now, incidents=found,
                        since=min((e.timestamp for e in events), default=None))
