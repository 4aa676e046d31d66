"""The outbox worker: claim due deliveries, sign and send them, record every attempt.

Nothing posts a webhook directly: events and their delivery rows are written in
the probe's transaction; this worker claims due rows atomically (so replicas
and workers never send the same attempt twice), sends each through the channel
of its subscription, and decides from the outcome: delivered, retry later by
the RetryPolicy, dead letter, or disable the subscription.

A claim is a lease: if the process dies mid-send, the lease runs out and the
delivery is sent again — with the same `webhook-id`, so receivers deduplicate.

A paced channel's request (Slack: one a second per URL) waits for its turn, which
every replica shares through the database (`store.pacing.claim_turn`); without a
turn — the database away — nothing is sent, and the delivery is sent later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from monitor import store
from monitor.events.model import Event, EventType
from monitor.service.context import AppContext
from monitor.service.outage import unreachable
from monitor.store.pacing import claim_turn, defer_delivery
from monitor.store.tables import DeliveryRow, SubscriptionRow
from monitor.webhooks.channels import Destination, render
from monitor.webhooks.egress import vet_destination
from monitor.webhooks.errors import EgressRefused
from monitor.webhooks.limits import DeliveryLimiter
from monitor.webhooks.outcome import Outcome, OutcomeKind
from monitor.webhooks.retry import DEFAULT_POLICY, RetryPolicy
from monitor.webhooks.sender import (
    DEFAULT_TIMEOUT,
    AttemptResult,
    SharedPace,
    make_client,
    send_limited,
)
from monitor.webhooks.signing import active_secrets

log = logging.getLogger("monitor.outbox")

POLL_INTERVAL = 0.5
LISTEN_RETRY = 2.0  # seconds between attempts to LISTEN again after the connection went
LEASE_FLOOR = 5.0  # seconds: a lease is the request timeout (at least this) plus this
# Added to a paced channel's interval when its turn is claimed. The turn says when a
# request starts; the receiver counts when it arrives, and one replica's request can take
# tens of ms longer than the next one's (a new connection, a busy event loop: 65 ms
# measured on a loaded test machine), which would bring the two closer than the pace.
PACE_MARGIN = timedelta(milliseconds=50)


class _NoTurn(Exception):
    """No turn in the shared pace, so nothing was sent: the database is away (`cause`),
    or the turn comes later than a claim is held for (`until`, wall time)."""

    def __init__(self, *, until: datetime | None = None,
                 cause: BaseException | None = None) -> None:
        super().__init__("no turn in the shared pace")
        self.until, self.cause = until, cause


class Outbox:
    def __init__(self, ctx: AppContext, *, policy: RetryPolicy = DEFAULT_POLICY,
                 timeout: float = DEFAULT_TIMEOUT, client: httpx.AsyncClient | None = None,
                 limiter: DeliveryLimiter | None = None,
                 lease: timedelta | None = None) -> None:
        self.ctx = ctx
        self.policy = policy
        self.timeout = timeout
        self.client = client or make_client(timeout=timeout)
        self.limiter = limiter or DeliveryLimiter()
        # Claim no more than can be in flight at once. The lease is short and renewed
        # while the batch is in hand (`_keep_leases`), however long it queues behind the
        # per-subscriber limit and Slack's pacing: a worker that dies is presumed dead
        # within seconds, and another sends again with the same webhook-id
        # (`finish_attempts` refuses the dead one's late result).
        self.batch = self.limiter.overall
        self.lease = lease or timedelta(seconds=max(timeout, LEASE_FLOOR) + LEASE_FLOOR)
        self.renew_every = self.lease.total_seconds() / 3

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until `stopping` is set; finishes the deliveries in hand first.

        Deliveries are claimed as sends finish, not a batch at a time: a slow or
        hanging subscriber holds its own sends (and the per-subscriber limit), not
        everyone's next claim. It claims when half the batch is free, and whenever
        woken (ctx.outbox_wake: a commit here, a NOTIFY from another replica) or
        every POLL_INTERVAL, which also catches retries falling due and any wake-up
        that was lost.
        """
        wake = self.ctx.outbox_wake
        chores = [asyncio.create_task(_wake_on(stopping, wake)),
                  asyncio.create_task(listen(self.ctx, stopping))]
        in_hand: set[str] = set()
        sending: set[asyncio.Task[None]] = set()
        keeper: asyncio.Task[None] | None = None
        try:
            while not stopping.is_set():
                wake.clear()  # before the claim: a commit during it wakes the next one
                self._collect(sending)
                room = self.batch - len(sending)
                started: list[asyncio.Task[None]] = []
                # Half the batch free, not one slot: a claim a delivery would cost more
                # than the wait it saves.
                if room >= max(1, self.batch // 2):
                    started = await self._claim_guarded(room, in_hand)
                    sending.update(started)
                if in_hand and (keeper is None or keeper.done()):
                    if keeper is not None:
                        self._collect({keeper})  # it stopped: nothing left, or it failed
                    keeper = asyncio.create_task(self._keep_leases(in_hand))
                if started and len(started) == room:
                    continue  # the queue may hold more: claim again once there is room
                woken = asyncio.create_task(wake.wait())
                try:
                    await asyncio.wait({woken, *sending}, timeout=POLL_INTERVAL,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
        finally:
            if sending:
                await asyncio.wait(sending)
                self._collect(sending)
            if keeper is not None and keeper.done():
                self._collect({keeper})  # one that failed is reported, not cancelled away
            for task in (*chores, *([keeper] if keeper else [])):
                task.cancel()
            await asyncio.gather(*chores, *([keeper] if keeper else []),
                                 return_exceptions=True)
            await self.client.aclose()

    async def _claim_guarded(self, room: int,
                             in_hand: set[str]) -> list[asyncio.Task[None]]:
        """`_claim`, with a failure counted (the database away) or logged, never raised:
        nothing may kill the worker."""
        try:
            started = await self._claim(room, in_hand)
        except Exception as exc:
            self._failed(exc)
            return []
        self.ctx.outage.reached()
        return started

    def _collect(self, tasks: set[asyncio.Task[None]]) -> None:
        """Take the finished tasks out of `tasks`; one that raised is reported."""
        for task in [t for t in tasks if t.done()]:
            tasks.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if unreachable(exc):  # known: counted and logged once a minute
            self.ctx.outage.failed("outbox pass", exc)
            self.ctx.metrics.database_failures.labels("outbox").inc()
        else:
            log.error("outbox pass failed", exc_info=exc, extra={"action": "outbox_error"})

    async def deliver_due(self) -> int:
        """One pass: claim a batch of due deliveries and send them all; how many."""
        in_hand: set[str] = set()
        sends = await self._claim(self.batch, in_hand)
        if not sends:
            return 0
        keeper = asyncio.create_task(self._keep_leases(in_hand))
        try:
            await asyncio.gather(*sends)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return len(sends)

    async def _claim(self, limit: int, in_hand: set[str]) -> list[asyncio.Task[None]]:
        """Claim up to `limit` due deliveries and start sending each; their ids are in
        `in_hand` (whose leases `_keep_leases` renews) until each is recorded."""
        now = self.ctx.clock()
        # (The queue's depth is a gauge the gauges chore reads for every replica alike.)
        claimed = await self.ctx.writer.run(lambda session: store.outbox.claim_due(
            session, now, self.ctx.replica, lease=self.lease, limit=limit))

        async def deliver(claim: store.outbox.ClaimedDelivery) -> None:
            try:
                await self._deliver(claim)
            finally:
                in_hand.discard(claim.delivery.id)

        in_hand.update(c.delivery.id for c in claimed)
        return [asyncio.create_task(deliver(c)) for c in claimed]

    async def _keep_leases(self, in_hand: set[str]) -> None:
        """Renew the claims of the deliveries still in hand, until they are all done."""
        while in_hand:
            await asyncio.sleep(self.renew_every)
            try:
                async with self.ctx.sessions() as session:
                    await store.outbox.renew_claims(session, sorted(in_hand), self.ctx.replica,
                                               self.ctx.clock() + self.lease)
            except Exception as exc:  # the lease then runs out; another worker re-sends
                if not unreachable(exc):
                    raise
                self.ctx.outage.failed("lease renewal", exc)

    async def _deliver(self, claimed: store.outbox.ClaimedDelivery) -> None:
        delivery, sub = claimed.delivery, claimed.subscription
        event = Event(id=claimed.event.id, type=EventType(claimed.event.type),
                      timestamp=claimed.event.timestamp, provider=claimed.event.provider,
                      run_id=claimed.event.run_id, data=claimed.event.data)
        now = self.ctx.clock()
        destination = Destination(
            kind=sub.kind, url=sub.url, secrets=tuple(sub.secrets), routing_key=sub.routing_key,
            public_url=self.ctx.config.settings.public_url, name=sub.name)
        attempt_no = delivery.attempts + 1
        try:
            request = render(event, destination)
        except ValueError as exc:  # a subscription that can't be sent to (no url, no key)
            result = AttemptResult(None, 0.0, "", Outcome(OutcomeKind.PERMANENT, str(exc)))
            await self._record(delivery, sub, attempt_no, result, now)
            return
        if request is None:  # this channel sends nothing for this event type
            result = AttemptResult(None, 0.0, "", Outcome(OutcomeKind.DELIVERED,
                                                          "nothing to send for this channel"))
        else:
            settings = self.ctx.config.settings
            try:
                await vet_destination(request.url,
                                        allow_private=settings.allow_private_destinations,
                                        allow_http=settings.allow_http_destinations)
            except EgressRefused as exc:
                kind = OutcomeKind.PERMANENT if exc.permanent else OutcomeKind.TRANSIENT
                result = AttemptResult(None, 0.0, "", Outcome(kind, f"refused: {exc}"))
            else:
                # webhook-id is the event id: stable across retries, replays and crashes.
                # The timestamp is wall time (receivers check it against theirs), not the
                # scheduling clock.
                try:
                    signed = request.signed(event.id, int(time.time()),
                                            active_secrets(sub.secrets, sub.rotated_until, now))
                except ValueError as exc:  # a stored secret that is not whsec_<base64>
                    result = AttemptResult(None, 0.0, "", Outcome(
                        OutcomeKind.PERMANENT, f"cannot sign: {exc}"))
                else:
                    try:
                        result = await send_limited(
                            self.client, self.limiter, signed, subscriber=sub.id,
                            timeout=self.timeout, shared_pace=self._shared_pace())
                    except _NoTurn as no_turn:
                        await self._no_turn(delivery, sub, no_turn)
                        return
        await self._record(delivery, sub, attempt_no, result, now)

    def _shared_pace(self) -> SharedPace:
        """One delivery's claims on the pace every replica shares (`claim_turn`).

        Wall time, not `ctx.clock`: the receiver counts real seconds, and so does the
        sleep between two claims. A turn later than a lease from now gives the delivery
        back rather than hold the batch for it (`_no_turn`); the lease is renewed
        meanwhile (`_keep_leases`).
        """
        give_up = time.monotonic() + self.lease.total_seconds()

        async def claim(key: str, interval: float) -> float | None:
            try:
                async with self.ctx.sessions() as session:
                    # The connection first, then the time: a turn runs from its grant, not
                    # from before a pool checkout (a new connection takes tens of ms).
                    await session.connection()
                    now = datetime.now(UTC)
                    until = await claim_turn(session, key, now,
                                             timedelta(seconds=interval) + PACE_MARGIN)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                raise _NoTurn(cause=exc) from exc
            if until is None:
                return None
            wait = max((until - now).total_seconds(), 0.0)
            if time.monotonic() + wait > give_up:
                raise _NoTurn(until=until)
            return wait

        return claim

    async def _no_turn(self, delivery: DeliveryRow, sub: SubscriptionRow,
                       no_turn: _NoTurn) -> None:
        """Never send unpaced. The database away: like any outage, counted and logged
        once a minute; the claim runs out and the delivery is sent when it is back. A
        turn too far off: the delivery goes back to the queue, due at its turn."""
        cause = no_turn.cause
        if no_turn.until is not None:
            due = self.ctx.clock() + max(no_turn.until - datetime.now(UTC), timedelta(0))
            try:
                async with self.ctx.sessions() as session:
                    await defer_delivery(session, delivery.id, self.ctx.replica, due)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                cause = exc
            else:
                log.info("delivery waits for its turn", extra={
                    "action": "delivery_paced", "delivery_id": delivery.id,
                    "subscription": sub.name, "next_attempt_at": due.isoformat()})
        if cause is not None:
            self.ctx.outage.failed("pacing", cause)
            self.ctx.metrics.database_failures.labels("outbox").inc()

    async def _record(self, delivery: DeliveryRow, sub: SubscriptionRow, attempt_no: int,
                      result: AttemptResult, started: datetime) -> None:
        outcome = result.outcome
        finished = self.ctx.clock()
        next_at: datetime | None = None
        if outcome.kind is OutcomeKind.DELIVERED:
            status = "delivered"
        elif outcome.kind is OutcomeKind.TRANSIENT:
            next_at = self.policy.next_attempt_at(attempt_no - delivery.schedule_start,
                                                  finished, outcome.retry_after)
            status = "pending" if next_at is not None else "dead"
        elif outcome.kind is OutcomeKind.DISABLE:
            status = "disabled"
        else:
            status = "dead"
        attempt = store.outbox.Attempt(
            delivery_id=delivery.id, attempt=attempt_no, at=started, status=result.status,
            latency_ms=result.latency_ms, outcome=outcome.kind.value,
            response=result.record[:1024] or None, worker=self.ctx.replica)
        error = None if status == "delivered" else outcome.reason
        finish = store.outbox.Finish(attempt, status=status, next_attempt_at=next_at,
                                     error=error, worker=self.ctx.replica)
        recorded = await self.ctx.writer.run_batched(store.outbox.finish_attempts, finish)
        if not recorded:
            log.warning("delivery claim lost", extra={
                "action": "delivery_claim_lost", "delivery_id": delivery.id,
                "subscription": sub.name, "attempt": attempt_no})
            return
        if outcome.kind is OutcomeKind.DISABLE:
            async with self.ctx.sessions() as session:
                await store.outbox.disable_subscription(session, sub.id, outcome.reason)
        self.ctx.metrics.deliveries.labels(sub.kind, outcome.kind.value).inc()
        self.ctx.metrics.delivery_latency.labels(sub.kind).observe(result.latency_ms / 1000)
        log.info("delivery attempt", extra={
            "action": "delivery", "delivery_id": delivery.id, "subscription": sub.name,
            "attempt": attempt_no, "status": result.status, "outcome": outcome.kind.value,
            "next_attempt_at": next_at.isoformat() if next_at else None,
            "reason": outcome.reason if status != "delivered" else None})


async def _wake_on(stopping: asyncio.Event, wake: asyncio.Event) -> None:
    await stopping.wait()
    wake.set()


async def listen(ctx: AppContext, stopping: asyncio.Event) -> None:
    """Hold a LISTEN for other replicas' NOTIFY (PostgreSQL); reconnect when it drops.

    Best effort by design: while it is down (the database away) the poll
    delivers, at most POLL_INTERVAL later; a drop is therefore not logged.
    """
    while not stopping.is_set():
        lost = asyncio.Event()
        try:
            async with store.notify.listening(ctx.engine, ctx.outbox_wake.set,
                                              lost.set) as listening:
                if not listening:
                    return  # SQLite: one process, woken in process
                ctx.outbox_wake.set()  # anything NOTIFYed while we were not listening
                ctx.metrics.outbox_listening.set(1)
                try:
                    await _first(stopping.wait(), lost.wait())
                finally:
                    ctx.metrics.outbox_listening.set(0)
        except Exception as exc:
            if not unreachable(exc):
                log.warning("outbox listener failed; polling meanwhile", extra={
                    "action": "outbox_listen_failed", "error": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), LISTEN_RETRY)


async def _first(*waits: Coroutine[Any, Any, object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def outbox_worker(ctx: AppContext, stopping: asyncio.Event) -> None:
    await Outbox(ctx, timeout=ctx.config.settings.webhook_timeout.total_seconds()).run(stopping)
