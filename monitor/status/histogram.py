"""A fixed, log-spaced latency histogram: what an hourly rollup keeps of its latencies.

Why not store p50/p95 per hour: percentiles do not merge — the p95 of a week is
not any combination of 168 hourly p95s. Counts over fixed buckets do: adding two
histograms bucket by bucket gives exactly the histogram of both hours, so any
window (24 h, 90 d, a year) is the sum of its rows, and its percentiles follow.

Why fixed buckets written by hand rather than a sketch library (DDSketch,
HdrHistogram): the layout must never move, because rows written by every replica
and every version over 400 days are summed together; a bare list of counts in a
JSON column is the whole format. Four buckets per doubling from 0.25 ms to about
70 minutes: a percentile is reported as its bucket's geometric middle, within
about 9 % of the true value (2**(1/8) - 1), which is finer than anyone reads a
latency chart.

Stored sparse, as `{"bucket index": count}` of the non-empty buckets: a provider's
hour fills a handful of its 97 buckets, and 400 days of rows per provider add up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

PER_DOUBLING = 4
LOWEST_MS = 0.25  # everything below falls in bucket 0
DOUBLINGS = 24  # 0.25 ms * 2**24 ≈ 70 min; everything above falls in the last bucket
SIZE = PER_DOUBLING * DOUBLINGS + 1

Histogram = list[int]
Stored = dict[str, int]  # sparse, as kept in a JSON column


def empty() -> Histogram:
    return [0] * SIZE


def bucket_of(latency_ms: float) -> int:
    """Bucket i > 0 holds (upper(i-1), upper(i)]; bucket 0 everything up to LOWEST_MS."""
    if not latency_ms > LOWEST_MS:  # also NaN and negatives
        return 0
    index = math.ceil(PER_DOUBLING * math.log2(latency_ms / LOWEST_MS) - 1e-9)
    return min(index, SIZE - 1)


def upper(index: int) -> float:
    """The bucket's upper bound in ms."""
    return LOWEST_MS * 2 ** (index / PER_DOUBLING)


def middle(index: int) -> float:
    """The value a percentile falling in this bucket is reported as (geometric middle)."""
    if index == 0:
        return LOWEST_MS
    return LOWEST_MS * 2 ** ((index - 0.5) / PER_DOUBLING)


def observe(histogram: Sequence[int], latency_ms: float) -> Histogram:
    """A copy of `histogram` with one more observation."""
    out = normalized(histogram)
    out[bucket_of(latency_ms)] += 1
    return out


def normalized(histogram: Sequence[int] | None) -> Histogram:
    """Exactly SIZE counts: a missing or short stored list is padded with zeros."""
    out = list(histogram or ())[:SIZE]
    return out + [0] * (SIZE - len(out))


def sparse(histogram: Sequence[int]) -> Stored:
    return {str(i): c for i, c in enumerate(histogram) if c}


def dense(stored: Mapping[str, int] | Sequence[int] | None) -> Histogram:
    """From a stored row: sparse, or a plain list of counts; bad entries are dropped."""
    if not isinstance(stored, Mapping):
        return normalized(stored)
    out = empty()
    for key, c in stored.items():
        if str(key).isdigit() and int(key) < SIZE and isinstance(c, int):
            out[int(key)] += c
    return out


def merge(histograms: Iterable[Sequence[int] | None]) -> Histogram:
    total = empty()
    for histogram in histograms:
        for i, count in enumerate(normalized(histogram)):
            total[i] += count
    return total


def count(histogram: Sequence[int]) -> int:
    return sum(histogram)


def quantile(histogram: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in ms, or None without observations.

    The nearest-rank definition: the smallest bucket holding at least ceil(q * n)
    observations, reported as its middle.
    """
    n = sum(histogram)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for i, c in enumerate(histogram):
        seen += c
        if seen >= rank:
            return middle(i)
    return middle(len(histogram) - 1)  # unreachable: seen reaches n
