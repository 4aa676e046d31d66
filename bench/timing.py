"""Measuring: batches of operations, warm-up, interleaved rounds, medians.

Every contender is reduced to a `Measure`: "run this n times, return the seconds".
`compare` then times ours and the baseline in alternating order, round after
round, so a slow spell on the shared machine hits both sides alike; medians over
rounds discard the odd disturbed round.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

AsyncOp = Callable[[], Awaitable[None]]
Measure = Callable[[int], float]


async def time_batch(op: AsyncOp, n: int, concurrency: int) -> float:
    """Seconds to complete `n` ops with at most `concurrency` in flight."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        # A fixed pool of workers pulling from a counter keeps exactly
        # `concurrency` sessions open until the tail, unlike gather() in chunks,
        # which idles while each chunk's slowest session finishes.
        while remaining > 0:
            remaining -= 1
            await op()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, n)):
            group.create_task(worker())
    return time.perf_counter() - started


def in_loop(runner: asyncio.Runner, op: AsyncOp, concurrency: int = 1) -> Measure:
    """A Measure for an async op, run on the benchmark's one long-lived event loop."""
    return lambda n: runner.run(time_batch(op, n, concurrency))


def commands(argv: Sequence[str]) -> Measure:
    """A Measure for an external command run n times in a row; it must exit 0."""
    def measure(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{argv[0]} exited {done.returncode}: "
                                   f"{done.stderr.decode(errors='replace').strip()}")
        return time.perf_counter() - started
    return measure


@dataclass(frozen=True)
class Comparison:
    """Median seconds per operation of each side, and the median of per-round ratios."""

    ours: float
    baseline: float
    ratio: float  # ours / baseline, in seconds per operation


class Metered:
    """A Measure that also keeps the CPU seconds per operation of each call after the
    first (the warm-up), read from `cpu` before and after."""

    def __init__(self, measure: Measure, cpu: Callable[[], float]) -> None:
        self._measure, self._cpu = measure, cpu
        self.samples: list[float] = []
        self._calls = 0

    def __call__(self, n: int) -> float:
        before = self._cpu()
        seconds = self._measure(n)
        if self._calls:
            self.samples.append((self._cpu() - before) / n)
        self._calls += 1
        return seconds

    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000


def interleaved(sides: Sequence[tuple[Measure, int]], rounds: int,
                warmup: int) -> list[list[float]]:
    """Seconds per operation of each side (`(measure, n)`), `rounds` samples each.

    Each round runs every side once, the order rotating from round to round, so
    a slow spell on the shared machine falls on each side in turn.
    """
    for measure, n in sides:
        # Warm-up: imports, cached TLS contexts, the page cache for executables,
        # and the server's own first-connection costs are paid here, not timed.
        measure(min(warmup, n))
    samples: list[list[float]] = [[] for _ in sides]
    for index in range(rounds):
        for step in range(len(sides)):
            side = (index + step) % len(sides)
            measure, n = sides[side]
            # Garbage left by the other side should not be collected on this one's clock.
            gc.collect()
            samples[side].append(measure(n) / n)
    return samples


def compare(ours: tuple[Measure, int], baseline: tuple[Measure, int], rounds: int,
            warmup: int) -> Comparison:
    """Time both sides (`(measure, n)`) in alternating order, `rounds` times.

    Each side has its own n so a 0.4 s command and a 2 ms probe both run long
    enough per round to rise above timer and scheduling noise. The ratio is taken
    within each round, then the median: the two halves of a round are seconds
    apart, so a slow spell on the shared machine mostly cancels out, where a ratio
    of the two overall medians would carry it.
    """
    mine, theirs = interleaved((ours, baseline), rounds, warmup)
    ratios = [o / b for o, b in zip(mine, theirs, strict=True)]
    return Comparison(statistics.median(mine), statistics.median(theirs),
                      statistics.median(ratios))
