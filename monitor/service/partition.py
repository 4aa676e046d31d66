"""Providers shared out over the live replicas, so each slot is claimed once, not raced.

Every replica writes a heartbeat (`store.replicas`) every HEARTBEAT and reads
who else is alive; a provider belongs to the live replica with the highest
rendezvous weight hash(provider, replica). Every replica computes the same
owner from the same list, a replica joining or leaving moves only its own
share, and a dead replica's providers move to the others once its heartbeat is
ALIVE_FOR old — within one interval for intervals above that. The slot claim
stays the arbiter: while two replicas' lists differ for a moment, both may
try a slot and one wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

from monitor import store
from monitor.service.context import AppContext

HEARTBEAT = timedelta(seconds=5)
ALIVE_FOR = HEARTBEAT * 3


def owner(provider: str, replicas: Sequence[str]) -> str | None:
    """The replica `provider` falls to (highest rendezvous weight), or None."""
    return max(replicas, key=lambda replica: _weight(provider, replica), default=None)


def _weight(provider: str, replica: str) -> int:
    digest = hashlib.blake2b(f"{provider}\0{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def mine(ctx: AppContext, provider: str) -> bool:
    """Whether this replica runs `provider`'s slots; all of them before the first beat."""
    return not ctx.live or owner(provider, ctx.live) == ctx.replica


async def heartbeat(ctx: AppContext) -> tuple[str, ...]:
    """Announce this replica and learn which others are alive."""
    now = ctx.clock()
    async with ctx.sessions() as session:
        await store.replicas.beat(session, ctx.replica, now)
        live = await store.replicas.alive(session, now - ALIVE_FOR)
    ctx.live = tuple(sorted({*live, ctx.replica}))
    return ctx.live


async def leave(ctx: AppContext) -> None:
    """On a clean stop: the others take this replica's share at their next beat."""
    async with ctx.sessions() as session:
        await store.replicas.forget(session, ctx.replica)
