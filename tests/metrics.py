"""Reading a service's Prometheus counters in tests."""

from __future__ import annotations

from monitor.service.context import AppContext


def counter_total(ctx: AppContext, metric: str) -> float:
    """`ctx.metrics.<metric>` summed over its labels (0 before it first counts)."""
    counter = getattr(ctx.metrics, metric)
    return sum(s.value for m in counter.collect() for s in m.samples
               if s.name.endswith("_total"))
