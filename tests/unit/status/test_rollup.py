"""Rollups and uptime from literal sequences of runs: hour boundaries, merged buckets,
gaps that are unknown rather than downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.probe.result import FailureClass
from monitor.receive.result import Placement, ReceiveStatus
from monitor.status import histogram
from monitor.status.rollup import (
    WINDOWS,
    HourCounts,
    add_receive,
    add_run,
    hour_of,
    merge,
    uptime,
)
from tests.unit.status.seed import arrival, probe

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_bucket_bounds_are_log_spaced_and_fixed() -> None:
    assert histogram.SIZE == 97
    assert histogram.bucket_of(0) == histogram.bucket_of(0.25) == 0
    assert histogram.bucket_of(float("nan")) == 0
    # 4 buckets per doubling: 0.5 ms is the 4th upper bound, 1 ms the 8th.
    assert histogram.bucket_of(0.5) == 4 and histogram.bucket_of(0.500001) == 5
    assert histogram.bucket_of(1.0) == 8
    assert histogram.bucket_of(10 ** 9) == histogram.SIZE - 1  # overflow: the last bucket
    for ms in (0.3, 7.0, 120.0, 4000.0, 300_000.0):
        i = histogram.bucket_of(ms)
        assert histogram.upper(i - 1) < ms <= histogram.upper(i)
        # A percentile is reported as the bucket's middle: within 2**(1/8) of the value.
        assert 2 ** (-1 / 8) <= histogram.middle(i) / ms <= 2 ** (1 / 8) + 1e-9


def test_merged_hours_give_the_percentiles_of_all_their_runs() -> None:
    # 90 fast runs in one hour, 10 slow ones in another: p50 is fast, p95 slow.
    fast = HourCounts()
    for _ in range(90):
        fast = add_run(fast, probe("p", T0, duration_ms=100))
    slow = HourCounts()
    for _ in range(10):
        slow = add_run(slow, probe("p", T0 + timedelta(hours=1), duration_ms=5000))
    both = merge([fast, slow])
    assert both.runs == 100 and histogram.count(both.probe_ms) == 100
    p50 = histogram.quantile(both.probe_ms, 0.5)
    p95 = histogram.quantile(both.probe_ms, 0.95)
    assert p50 is not None and 100 * 0.9 < p50 < 100 * 1.1
    assert p95 is not None and 5000 * 0.9 < p95 < 5000 * 1.1
    # The hourly p95s say otherwise: the slow hour's p95 is all the first hour has not.
    assert histogram.quantile(fast.probe_ms, 0.95) == p50
    # Merging is addition: order and grouping do not matter.
    assert merge([slow, fast]) == both == merge([merge([fast]), merge([slow])])


def test_stored_sparse_and_read_back() -> None:
    h = histogram.observe(histogram.observe(histogram.empty(), 120), 121)
    stored = histogram.sparse(h)
    assert stored == {str(histogram.bucket_of(120)): 2}
    assert histogram.dense(stored) == h
    # A hand-edited or foreign row: out-of-range and non-numeric entries are dropped.
    assert histogram.dense({"3": 1, "999": 5, "x": 1, "4": "2"})[:5] == [0, 0, 0, 1, 0]
    assert histogram.dense([0, 2])[:2] == [0, 2]  # a plain list of counts reads too


def test_a_stored_histogram_of_another_length_still_merges() -> None:
    short = [0, 3]  # as written by a version with fewer buckets, or hand-edited
    assert histogram.merge([short, None, histogram.empty()])[:2] == [0, 3]
    assert len(histogram.merge([short])) == histogram.SIZE
    assert histogram.quantile(histogram.empty(), 0.5) is None


def test_failures_are_counted_by_class_and_deliveries_by_outcome() -> None:
    counts = HourCounts()
    for result in (probe("p", T0), probe("p", T0, ok=False),
                   probe("p", T0, ok=False, failure_class=FailureClass.TRANSIENT, code=451,
                         enhanced="4.3.0"), probe("p", T0, ok=False)):
        counts = add_run(counts, result)
    assert (counts.runs, counts.ok, counts.failed) == (4, 1, 3)
    assert counts.failures == {"permanent": 2, "transient": 1}
    for result in (arrival("p", T0, latency_ms=2000), arrival("p", T0, latency_ms=8000),
                   arrival("p", T0, placement=Placement.JUNK, folder="Junk"),
                   arrival("p", T0, status=ReceiveStatus.LATE),
                   arrival("p", T0, status=ReceiveStatus.MISSING),
                   arrival("p", T0, status=ReceiveStatus.ERROR)):  # unknown: not counted
        counts = add_receive(counts, result)
    assert counts.delivery == {"ok": 2, "junk": 1, "late": 1, "missing": 1}
    # Round trips of everything that arrived (late and junk too): 4 of them.
    assert histogram.count(counts.receive_ms) == 4


@pytest.mark.parametrize(("when", "hour"), [
    (datetime(2026, 12, 1, 13, 0, 0, tzinfo=UTC), datetime(2026, 12, 1, 13, tzinfo=UTC)),
    (datetime(2026, 12, 1, 13, 59, 59, 999999, tzinfo=UTC),
     datetime(2026, 12, 1, 13, tzinfo=UTC)),
    (datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC), datetime(2026, 12, 1, 14, tzinfo=UTC)),
])
def test_hour_boundaries(when: datetime, hour: datetime) -> None:
    assert hour_of(when) == hour


def test_hour_of_an_offset_time_is_its_utc_hour() -> None:
    from datetime import timezone

    cet = timezone(timedelta(hours=1))
    assert hour_of(datetime(2026, 12, 1, 0, 30, tzinfo=cet)) == datetime(2026, 11, 30, 23,
                                                                         tzinfo=UTC)


def _hours(sequence: str, start: datetime) -> dict[datetime, HourCounts]:
    """One character per hour: `u` a good run, `d` a failed run, `.` no run (a gap)."""
    out = {}
    for i, c in enumerate(sequence):
        at = start + timedelta(hours=i)
        if c != ".":
            out[at] = add_run(HourCounts(), probe("p", at, ok=c == "u"))
    return out


def test_a_gap_is_unknown_not_downtime() -> None:
    now = T0 + timedelta(hours=23, minutes=10)  # the window is T0 .. T0+23h
    hours = _hours("uuuuuuuu........uuuuuuud", T0)  # 8 hours down for the service itself
    day = uptime(WINDOWS["24h"], hours, now)
    assert (day.runs, day.ok, day.observed_hours, day.window_hours) == (16, 15, 16, 24)
    assert day.ratio == pytest.approx(15 / 16)  # not 15 / 24: the gap counts for nothing
    assert day.coverage == pytest.approx(16 / 24)
    assert day.percent() == "93.75%"


def test_only_the_windows_hours_count() -> None:
    now = T0 + timedelta(days=2, minutes=5)
    hours = _hours("d" * 24 + "u" * 25, T0)  # a bad first day, a good second one
    assert uptime(WINDOWS["24h"], hours, now).percent() == "100%"
    week = uptime(WINDOWS["7d"], hours, now)
    assert (week.runs, week.ok) == (49, 25) and week.coverage == pytest.approx(49 / 168)


def test_uptime_with_nothing_observed_says_no_data() -> None:
    empty = uptime(WINDOWS["90d"], {}, T0)
    assert empty.ratio is None and empty.percent() == "no data" and empty.coverage == 0


def test_a_failed_run_is_never_rounded_up_to_100_percent() -> None:
    hours = {T0: HourCounts(runs=100_000, ok=99_999)}
    assert uptime(WINDOWS["24h"], hours, T0).percent() == "99.99%"
