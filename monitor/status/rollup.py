"""Hourly rollups: what a provider's hour adds up to, and what any window of hours says.

One row per provider and hour holds runs / ok / failed, failures by class, the
probe-duration and receive round-trip histograms (monitor.status.histogram) and
the delivery outcomes. The store writes it in the transaction that records the
run or the receive result (monitor.store.rollups); everything here is pure.

Hours without a row are unknown, not downtime: the service was not running, or
the database was away and slots were skipped. Uptime is therefore ok / runs over
the runs observed, and `coverage` says how many of the window's hours had any run,
so "100 % over 3 of 24 hours" is never mistaken for a full day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from monitor.probe.result import ProbeResult
from monitor.receive.result import Placement, ReceiveResult, ReceiveStatus
from monitor.status import histogram
from monitor.status.histogram import Histogram

HOUR = timedelta(hours=1)
# A year's badge plus a month's margin; raw runs keep `settings.retention`.
RETENTION = timedelta(days=400)


class Delivery(StrEnum):
    """What the receive side made of one test message."""

    OK = "ok"  # in the inbox (or another non-junk folder) before the deadline
    LATE = "late"
    JUNK = "junk"
    MISSING = "missing"


def hour_of(when: datetime) -> datetime:
    """The start of the UTC hour `when` falls in."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class HourCounts:
    """One provider's hour, or (merged) any number of its hours."""

    runs: int = 0
    ok: int = 0
    failed: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)  # failure class -> runs
    probe_ms: Histogram = field(default_factory=histogram.empty)
    receive_ms: Histogram = field(default_factory=histogram.empty)
    delivery: Mapping[str, int] = field(default_factory=dict)  # Delivery -> messages


def add_run(counts: HourCounts, result: ProbeResult) -> HourCounts:
    failures = dict(counts.failures)
    if not result.ok:
        cls = result.failure_class.value if result.failure_class else "unknown"
        failures[cls] = failures.get(cls, 0) + 1
    return replace(counts, runs=counts.runs + 1, ok=counts.ok + result.ok,
                   failed=counts.failed + (not result.ok), failures=failures,
                   probe_ms=histogram.observe(counts.probe_ms, result.duration_ms))


def delivery_of(result: ReceiveResult) -> Delivery | None:
    """None: the mailbox could not be checked, so nothing is known about the message."""
    if result.status is ReceiveStatus.LATE:
        return Delivery.LATE
    if result.status is ReceiveStatus.MISSING:
        return Delivery.MISSING
    if result.status is ReceiveStatus.ARRIVED:
        return Delivery.JUNK if result.placement is Placement.JUNK else Delivery.OK
    return None


def add_receive(counts: HourCounts, result: ReceiveResult) -> HourCounts:
    outcome = delivery_of(result)
    if outcome is None:
        return counts
    delivery = dict(counts.delivery)
    delivery[outcome.value] = delivery.get(outcome.value, 0) + 1
    receive_ms = counts.receive_ms
    if result.arrived and result.latency_ms is not None:
        receive_ms = histogram.observe(receive_ms, result.latency_ms)
    return replace(counts, delivery=delivery, receive_ms=receive_ms)


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})}


def merge(hours: Iterable[HourCounts]) -> HourCounts:
    total = HourCounts()
    for h in hours:
        total = HourCounts(
            runs=total.runs + h.runs, ok=total.ok + h.ok, failed=total.failed + h.failed,
            failures=_add(total.failures, h.failures),
            probe_ms=histogram.merge((total.probe_ms, h.probe_ms)),
            receive_ms=histogram.merge((total.receive_ms, h.receive_ms)),
            delivery=_add(total.delivery, h.delivery))
    return total


@dataclass(frozen=True)
class Window:
    """A named span of whole hours ending with the current one (`24h` = this hour and
    the 23 before it)."""

    name: str
    hours: int

    def start(self, now: datetime) -> datetime:
        return hour_of(now) - (self.hours - 1) * HOUR


WINDOWS = {w.name: w for w in (Window("24h", 24), Window("7d", 7 * 24), Window("30d", 30 * 24),
                               Window("90d", 90 * 24), Window("1y", 365 * 24))}
PAGE_WINDOWS = ("24h", "7d", "30d", "90d")


@dataclass(frozen=True)
class Uptime:
    """Uptime over a window, from its rollups only."""

    window: str
    runs: int
    ok: int
    observed_hours: int  # hours of the window with at least one run
    window_hours: int

    @property
    def ratio(self) -> float | None:
        """ok / runs over the runs observed; None when nothing was observed."""
        return self.ok / self.runs if self.runs else None

    @property
    def coverage(self) -> float:
        return self.observed_hours / self.window_hours

    def percent(self) -> str:
        """`99.95%`, never rounded up to 100 while a run failed; `no data`."""
        ratio = self.ratio
        if ratio is None:
            return "no data"
        if ratio < 1 and ratio >= 0.99995:
            return "99.99%"
        return f"{ratio * 100:.2f}%".replace(".00%", "%")


def uptime(window: Window, hours: Mapping[datetime, HourCounts], now: datetime) -> Uptime:
    """`hours`: the provider's rollups by hour (any span; those outside are ignored)."""
    start = window.start(now)
    inside = [h for at, h in hours.items() if start <= at <= hour_of(now) and h.runs]
    return Uptime(window.name, runs=sum(h.runs for h in inside), ok=sum(h.ok for h in inside),
                  observed_hours=len(inside), window_hours=window.hours)


def combined(a: Uptime, b: Uptime, sign: int = 1) -> Uptime:
    """One window's uptime from two disjoint sets of its hours (`sign=-1`: the hours of
    `a` that are not in `b`, when `b`'s are a part of `a`'s)."""
    return Uptime(a.window, runs=a.runs + sign * b.runs, ok=a.ok + sign * b.ok,
                  observed_hours=a.observed_hours + sign * b.observed_hours,
                  window_hours=a.window_hours)


def uptime_from_totals(window: Window, runs: int, ok: int, observed_hours: int) -> Uptime:
    """The same from sums the database made (SUM(runs), SUM(ok), COUNT of hours with runs)."""
    return Uptime(window.name, runs=runs, ok=ok, observed_hours=observed_hours,
                  window_hours=window.hours)
