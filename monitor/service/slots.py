"""One slot clock for every provider this replica owns, instead of a timer per provider.

APScheduler 3 keeps a trigger per job and wakes for each of them; at 5,000
providers on three replicas every replica fired all 5,000 and returned early
for the two thirds it doesn't own. Here a heap holds only this replica's share
(service/partition.py), rebuilt when the live replicas change, and one task
sleeps until the earliest boundary. Written by hand because the work is a heap
and a sleep; APScheduler's jobs stay for the handful of periodic chores.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.config import ProviderConfig
from monitor.service.context import AppContext
from monitor.service.partition import owner
from monitor.service.probing import run_slot, slot_boundary, slot_for

log = logging.getLogger("monitor.scheduler")

# The longest nap: how soon a change of the live replicas moves providers in or out.
MAX_NAP = 1.0


@dataclass(frozen=True)
class Fire:
    provider: ProviderConfig
    slot: int
    boundary: datetime


class SlotTable:
    """Which owned provider is due next. Pure: the caller passes the time."""

    def __init__(self, providers: Sequence[ProviderConfig]) -> None:
        self._providers = providers
        self._heap: list[tuple[float, int, int]] = []  # (boundary, index, slot)
        self.owned: frozenset[str] = frozenset()

    def own(self, names: Iterable[str], now: datetime, *, catch_up: bool = False) -> None:
        """Schedule exactly `names`: those already scheduled keep their next slot (one
        due this very moment still runs). New ones start at their next boundary, or
        with `catch_up` at once, in the slot `now` is in: a provider handed over from
        another replica (it died, or the two saw the live set differently for a
        moment) may not have had that slot run, and its claim tells whether it did.
        """
        owned = frozenset(names)
        self._heap = [entry for entry in self._heap
                      if self._providers[entry[1]].name in owned]
        for index, provider in enumerate(self._providers):
            if provider.name in owned and provider.name not in self.owned:
                slot = slot_for(provider, now) + (0 if catch_up else 1)
                self._heap.append((slot_boundary(provider, slot).timestamp(), index, slot))
        heapq.heapify(self._heap)
        self.owned = owned

    def due(self, now: datetime) -> tuple[list[Fire], int]:
        """The slots to run now, and how many passed unrun while the clock slept.

        A provider whose boundary has come runs the slot `now` is in; slots that
        began and ended while the clock was not woken (a blocked event loop, a
        suspended process) collapse into that one, like APScheduler's coalesce,
        and are counted. Then it is scheduled at its next boundary.
        """
        fires: list[Fire] = []
        missed = 0
        cutoff = now.timestamp()
        while self._heap and self._heap[0][0] <= cutoff:
            _, index, slot = heapq.heappop(self._heap)
            provider = self._providers[index]
            # max: at the boundary itself float rounding may put `now` in the slot before.
            current = max(slot, slot_for(provider, now))
            missed += current - slot
            fires.append(Fire(provider, current, slot_boundary(provider, current)))
            heapq.heappush(self._heap, (slot_boundary(provider, current + 1).timestamp(), index,
                                        current + 1))
        return fires, missed

    def next_at(self) -> datetime | None:
        return datetime.fromtimestamp(self._heap[0][0], UTC) if self._heap else None


def owned_names(ctx: AppContext) -> list[str]:
    """This replica's share; all providers before the first heartbeat."""
    names = [p.name for p in ctx.config.providers]
    if not ctx.live:
        return names
    return [name for name in names if owner(name, ctx.live) == ctx.replica]


async def run_slots(ctx: AppContext, stopping: asyncio.Event) -> None:
    """Fire this replica's provider slots on their boundaries until `stopping`."""
    table = SlotTable(ctx.config.providers)
    running: dict[str, asyncio.Task[object]] = {}
    live: tuple[str, ...] | None = None
    while not stopping.is_set():
        now = ctx.clock()
        if ctx.live != live:
            # The first share starts at the next boundaries; a later change hands
            # providers over mid-slot, and their current slot is tried at once.
            table.own(owned_names(ctx), now, catch_up=live is not None)
            live = ctx.live
            ctx.metrics.providers_owned.set(len(table.owned))
        fires, missed = table.due(now)
        if missed:
            ctx.metrics.slots_missed.inc(missed)
            log.warning("slots missed: the slot clock woke too late", extra={
                "action": "slots_missed", "count": missed})
        for fire in fires:
            busy = running.get(fire.provider.name)
            if busy is not None and not busy.done():
                # Never two runs of one provider at once: this slot is not run.
                ctx.metrics.slots_overrun.inc()
                log.debug("slot skipped: the previous run is still going", extra={
                    "action": "slot_overrun", "provider": fire.provider.name,
                    "slot": fire.slot})
                continue
            task: asyncio.Task[object] = asyncio.create_task(
                run_slot(ctx, fire.provider, fire.slot), name=f"slot:{fire.provider.name}")
            # Tracked from creation: shutdown waits for it, so a stop never cancels a
            # slot between its claim and its probe (the post-claim jitter).
            ctx.track(task)
            running[fire.provider.name] = task
            task.add_done_callback(_report_crash)
            task.add_done_callback(functools.partial(_forget, running, fire.provider.name))
        next_at = table.next_at()
        nap = MAX_NAP if next_at is None else (next_at - ctx.clock()).total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=min(max(nap, 0.0), MAX_NAP))


def _forget(running: dict[str, asyncio.Task[object]], name: str,
            done: asyncio.Task[object]) -> None:
    if running.get(name) is done:
        del running[name]


def _report_crash(task: asyncio.Task[object]) -> None:
    """A bug in a slot run is logged with its traceback; known failures never get here."""
    if not task.cancelled() and task.exception() is not None:
        log.error("slot run failed", exc_info=task.exception(),
                  extra={"action": "slot_crashed", "task": task.get_name()})
