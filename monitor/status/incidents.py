"""Incidents: the spans from a `probe.failed` (or `delivery.failed`) event to the
`probe.recovered` (`delivery.recovered`) that closed it, read from the event history.

Pure: events in, spans out. The family comes from the event model (`TYPES`), so
the pairs are the ones PagerDuty opens and resolves as one incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.events.model import EventType

# The families whose trigger is an outage of the provider or of its delivery.
OPENS = {EventType.PROBE_FAILED: "probe", EventType.DELIVERY_FAILED: "delivery"}
CLOSES = {EventType.PROBE_RECOVERED: "probe", EventType.DELIVERY_RECOVERED: "delivery"}
TYPES = tuple(t.value for t in (*OPENS, *CLOSES))


@dataclass(frozen=True)
class EventFact:
    """The few columns of a stored event an incident needs."""

    type: str
    provider: str
    timestamp: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class Incident:
    provider: str
    kind: str  # probe | delivery
    started: datetime
    ended: datetime | None  # None: still open
    step: str | None
    code: str  # "550 5.1.1", "" without a reply
    failure_class: str | None
    message: str  # the server's words: attacker-controlled, escaped when rendered
    diagnosis: str

    def duration(self, now: datetime) -> timedelta:
        return (self.ended or now) - self.started


def _code(data: dict[str, Any]) -> str:
    return " ".join(str(data[k]) for k in ("code", "enhanced_code") if data.get(k) not in
                    (None, ""))


def incidents(events: Iterable[EventFact]) -> list[Incident]:
    """Spans, newest first. A recovery without its failure (the failure is past
    retention) is dropped; a second failure while one is open keeps the first."""
    open_: dict[tuple[str, str], EventFact] = {}
    out: list[Incident] = []

    def close(fact: EventFact, ended: datetime | None) -> Incident:
        d = fact.data
        diagnosis = d.get("diagnosis")
        return Incident(
            provider=fact.provider, kind=OPENS[EventType(fact.type)], started=fact.timestamp,
            ended=ended, step=d.get("step"), code=_code(d), failure_class=d.get("class"),
            message=str(d.get("message") or ""),
            diagnosis=str(diagnosis.get("summary", "")) if isinstance(diagnosis, dict) else "")

    for fact in sorted(events, key=lambda f: f.timestamp):
        try:
            kind = EventType(fact.type)
        except ValueError:
            continue
        if kind in OPENS:
            open_.setdefault((fact.provider, OPENS[kind]), fact)
        elif kind in CLOSES and (opened := open_.pop((fact.provider, CLOSES[kind]), None)):
            out.append(close(opened, fact.timestamp))
    out += [close(fact, None) for fact in open_.values()]
    return sorted(out, key=lambda i: i.started, reverse=True)


def human_duration(span: timedelta) -> str:
    """`45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"
