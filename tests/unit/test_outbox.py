"""The outbox worker against real HTTP receivers on loopback, with an injected clock.

Signatures are checked by the independent `standardwebhooks` package.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from monitor import store
from monitor.config import Config
from monitor.events.model import Event, EventType
from monitor.ids import new_id
from monitor.service.context import AppContext
from monitor.service.outbox import Outbox
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import migrate
from monitor.store.tables import DeliveryAttemptRow, DeliveryRow, SubscriptionRow
from monitor.webhooks.retry import RetryPolicy
from tests.databases import throwaway_database
from tests.receivers import Receiver, Reply, running
from tests.waiting import until

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def make_ctx(url: str, receiver_url: str, clock: Clock, **sub: Any) -> AppContext:
    subscription = {"name": "ops", "kind": "generic", "url": f"{receiver_url}/hook",
                    "secret": SECRET, **sub}
    config = Config.model_validate({
        "subscriptions": [subscription],
        "settings": {"allow_private_destinations": True, "allow_http_destinations": True}})
    ctx = AppContext.create(config, url)
    ctx.clock = clock
    return ctx


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver()) as r:
        yield r


async def setup(ctx: AppContext, n: int = 1) -> list[Event]:
    await migrate(ctx.engine)
    await sync_config_subscriptions(ctx)
    events = [Event(id=new_id(), type=EventType.PROBE_FAILED, timestamp=ctx.clock(),
                    provider="relay", run_id="run1",
                    data={"step": "rcpt", "code": 550, "enhanced_code": "5.1.1",
                          "message": "no such user", "class": "permanent"}) for _ in range(n)]
    now = ctx.clock()
    await ctx.writer.run(lambda s: store.events.add_events(s, events, now))
    return events


async def delivery(ctx: AppContext) -> DeliveryRow:
    async with ctx.sessions() as session:
        return (await session.exec(sa.select(DeliveryRow))).scalars().one()


async def attempts(ctx: AppContext) -> list[DeliveryAttemptRow]:
    async with ctx.sessions() as session:
        rows = (await session.exec(sa.select(DeliveryAttemptRow)
                                   .order_by(DeliveryAttemptRow.attempt))).scalars().all()
        return list(rows)


def verify(received: Any) -> dict[str, Any]:
    """The independent verifier accepts exactly what we sent."""
    return Webhook(SECRET).verify(received.body, received.headers)  # type: ignore[no-any-return]


async def test_500_twice_then_200_delivers_on_third_attempt_same_id(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [Reply(500), Reply(500), Reply(200)]
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    outbox = Outbox(ctx, policy=RetryPolicy(jitter=0))
    try:
        [event] = await setup(ctx)
        assert await outbox.deliver_due() == 1
        row = await delivery(ctx)
        assert (row.status, row.attempts, row.last_status) == ("pending", 1, 500)
        assert row.next_attempt_at == START + timedelta(seconds=5)
        assert await outbox.deliver_due() == 0  # not due yet: nothing sent
        clock.now += timedelta(seconds=5)
        assert await outbox.deliver_due() == 1
        clock.now += timedelta(minutes=5)
        assert await outbox.deliver_due() == 1
        row = await delivery(ctx)
        assert (row.status, row.attempts) == ("delivered", 3)
        ids = {r.headers["webhook-id"] for r in receiver.received}
        assert ids == {event.id} and len(receiver.received) == 3
        for received in receiver.received:
            payload = verify(received)
            assert payload["type"] == "probe.failed"
            assert payload["data"]["event_id"] == event.id and payload["data"]["code"] == 550
        assert [a.status for a in await attempts(ctx)] == [500, 500, 200]
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_retry_after_is_honoured(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [Reply(429, {"Retry-After": "2"}), Reply(200)]
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    outbox = Outbox(ctx, policy=RetryPolicy(jitter=0))
    try:
        await setup(ctx)
        await outbox.deliver_due()
        assert (await delivery(ctx)).next_attempt_at == START + timedelta(seconds=2)
        clock.now += timedelta(seconds=1)
        assert await outbox.deliver_due() == 0
        clock.now += timedelta(seconds=1)
        assert await outbox.deliver_due() == 1
        assert (await delivery(ctx)).status == "delivered"
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_hanging_receiver_times_out_and_is_retried(tmp_path: Path,
                                                         receiver: Receiver) -> None:
    receiver.script = [Reply(hang=True), Reply(200)]
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    outbox = Outbox(ctx, policy=RetryPolicy(jitter=0), timeout=0.5)
    try:
        await setup(ctx)
        started = asyncio.get_running_loop().time()
        await outbox.deliver_due()
        assert asyncio.get_running_loop().time() - started < 3
        row = await delivery(ctx)
        assert row.status == "pending" and row.last_status is None
        assert "timed out" in (row.last_error or "")
        clock.now += timedelta(seconds=5)
        await outbox.deliver_due()
        assert (await delivery(ctx)).status == "delivered"
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_410_disables_the_subscription(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [Reply(410)]
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    outbox = Outbox(ctx, policy=RetryPolicy(jitter=0))
    try:
        await setup(ctx, n=3)
        await outbox.deliver_due()
        async with ctx.sessions() as session:
            sub = (await session.exec(sa.select(SubscriptionRow))).scalars().one()
            statuses = (await session.exec(sa.select(DeliveryRow.status))).scalars().all()
        assert not sub.enabled and "410" in (sub.disabled_reason or "")
        assert set(statuses) == {"disabled"}
        sent = len(receiver.received)
        clock.now += timedelta(days=2)
        assert await outbox.deliver_due() == 0
        assert len(receiver.received) == sent
        # New events for a disabled subscription are not queued at all.
        new = [Event(id=new_id(), type=EventType.PROBE_FAILED, timestamp=clock.now,
                     provider="relay")]
        queued = await ctx.writer.run(lambda s: store.events.add_events(s, new, clock.now))
        assert queued == 0
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_dead_letter_after_the_schedule_then_replay(tmp_path: Path,
                                                          receiver: Receiver) -> None:
    receiver.script = [Reply(503)] * 10 + [Reply(200)]
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    policy = RetryPolicy()
    outbox = Outbox(ctx, policy=policy)
    try:
        [event] = await setup(ctx)
        for _ in range(policy.max_attempts):
            assert await outbox.deliver_due() == 1
            clock.now += timedelta(hours=27)  # past the longest delay plus jitter
        row = await delivery(ctx)
        assert (row.status, row.attempts) == ("dead", policy.max_attempts)
        assert await outbox.deliver_due() == 0
        async with ctx.sessions() as session:
            assert await store.outbox.replay_delivery(session, row.id, clock.now)
        assert await outbox.deliver_due() == 1
        row = await delivery(ctx)
        assert row.status == "delivered"
        assert {r.headers["webhook-id"] for r in receiver.received} == {event.id}
        verify(receiver.received[-1])
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_a_replayed_dead_letter_gets_the_whole_schedule_again(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [Reply(503)] * 13 + [Reply(200)]
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    policy = RetryPolicy(schedule=(timedelta(seconds=5), timedelta(minutes=5)), jitter=0)
    outbox = Outbox(ctx, policy=policy)
    try:
        await setup(ctx)
        for _ in range(policy.max_attempts):
            assert await outbox.deliver_due() == 1
            clock.now += timedelta(hours=1)
        assert (await delivery(ctx)).status == "dead"
        async with ctx.sessions() as session:
            assert await store.outbox.replay_delivery(session, (await delivery(ctx)).id, clock.now)
        # The replay's first try fails transiently: a retry is due in 5 s, not a dead letter.
        assert await outbox.deliver_due() == 1
        row = await delivery(ctx)
        assert (row.status, row.attempts) == ("pending", policy.max_attempts + 1)
        assert row.next_attempt_at == clock.now + timedelta(seconds=5)
        clock.now += timedelta(seconds=5)
        assert await outbox.deliver_due() == 1
        clock.now += timedelta(minutes=5)
        assert await outbox.deliver_due() == 1
        row = await delivery(ctx)
        assert (row.status, row.attempts) == ("dead", 2 * policy.max_attempts)
        assert len(await attempts(ctx)) == 2 * policy.max_attempts  # history kept
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_rotation_signs_with_old_and_new_secret(tmp_path: Path,
                                                      receiver: Receiver) -> None:
    new_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    outbox = Outbox(ctx)
    try:
        await setup(ctx)
        async with ctx.sessions() as session, session.begin():
            sub = (await session.exec(sa.select(SubscriptionRow))).scalars().one()
            sub.secrets = [new_secret, SECRET]
            sub.rotated_until = clock.now + timedelta(days=1)
        await outbox.deliver_due()
        [received] = await receiver.wait_for(1)
        assert len(received.headers["webhook-signature"].split(" ")) == 2
        verify(received)  # the old secret still verifies …
        Webhook(new_secret).verify(received.body, received.headers)  # … and so does the new
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_failure_and_recovery_reach_every_channel(
        tmp_path: Path, receiver: Receiver) -> None:
    from monitor.webhooks.channels import KINDS
    from tests.unit.webhooks.shapes import (
        discord_problems,
        pagerduty_problems,
        slack_problems,
        teams_problems,
    )

    clock = Clock()
    config = Config.model_validate({
        "subscriptions": [
            {"name": "generic", "kind": "generic", "url": f"{receiver.url}/generic",
             "secret": SECRET},
            {"name": "slack", "kind": "slack", "url": f"{receiver.url}/slack"},
            {"name": "pd", "kind": "pagerduty", "url": f"{receiver.url}/pd",
             "routing_key": "R0UTINGKEY0123456789012345678901"},
            {"name": "teams", "kind": "teams", "url": f"{receiver.url}/teams"},
            {"name": "discord", "kind": "discord", "url": f"{receiver.url}/discord"}],
        "settings": {"allow_private_destinations": True, "allow_http_destinations": True}})
    ctx = AppContext.create(config, f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    ctx.clock = clock
    outbox = Outbox(ctx)
    try:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        for kind in (EventType.PROBE_FAILED, EventType.PROBE_RECOVERED):
            event = Event(id=new_id(), type=kind, timestamp=clock.now, provider="relay",
                          run_id="r1", data={"step": "rcpt", "code": 550,
                                             "enhanced_code": "5.1.1", "class": "permanent",
                                             "message": "no such user"}
                          if kind is EventType.PROBE_FAILED else {})
            assert await ctx.writer.run(
                lambda s, new=[event]: store.events.add_events(s, new, clock.now)) == 5
            while await outbox.deliver_due():
                pass
        by_path: dict[str, list[Any]] = {}
        for received in receiver.received:
            by_path.setdefault(received.path, []).append(received)
        assert [verify(r)["type"] for r in by_path["/generic"]] == ["probe.failed",
                                                                    "probe.recovered"]
        slack = [json.loads(r.body) for r in by_path["/slack"]]
        assert [slack_problems(m) for m in slack] == [[], []]
        assert "relay" in slack[0]["text"] and "550" in json.dumps(slack[0]["blocks"])
        pd = [json.loads(r.body) for r in by_path["/pd"]]
        assert [pagerduty_problems(m) for m in pd] == [[], []]
        assert [m["event_action"] for m in pd] == ["trigger", "resolve"]
        assert pd[0]["dedup_key"] == pd[1]["dedup_key"]
        assert "R0UTINGKEY" not in str(await attempts(ctx))
        teams = [json.loads(r.body) for r in by_path["/teams"]]
        assert [teams_problems(m) for m in teams] == [[], []]
        cards = [m["attachments"][0]["content"] for m in teams]
        assert [c["body"][0]["text"] for c in cards] == [
            "relay: probe failing at rcpt with 550 5.1.1", "relay: probe recovered"]
        discord = [json.loads(r.body) for r in by_path["/discord"]]
        assert [discord_problems(m) for m in discord] == [[], []]
        assert [m["embeds"][0]["title"] for m in discord] == [
            "relay: probe failing at rcpt with 550 5.1.1", "relay: probe recovered"]
        assert all(m["allowed_mentions"] == {"parse": []} for m in discord)
        assert {s.kind for s in config.subscriptions} == set(KINDS)  # a new kind joins here
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_disabled_subscription_queue_waits_and_resumes(tmp_path: Path,
                                                             receiver: Receiver) -> None:
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    outbox = Outbox(ctx)
    try:
        await setup(ctx)
        async with ctx.sessions() as session, session.begin():
            sub = (await session.exec(sa.select(SubscriptionRow))).scalars().one()
            sub.enabled = False
        assert await outbox.deliver_due() == 0 and receiver.received == []
        async with ctx.sessions() as session, session.begin():
            sub = (await session.exec(sa.select(SubscriptionRow))).scalars().one()
            sub.enabled = True
        assert await outbox.deliver_due() == 1
        assert (await delivery(ctx)).status == "delivered"
    finally:
        await outbox.client.aclose()
        await ctx.close()


async def test_a_worker_that_lost_its_claim_records_nothing(tmp_path: Path,
                                                            receiver: Receiver) -> None:
    clock = Clock()
    ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
    try:
        await setup(ctx)
        first = clock.now
        [claimed] = await ctx.writer.run(lambda s: store.outbox.claim_due(
            s, first, "worker-a", lease=timedelta(seconds=1)))
        clock.now += timedelta(seconds=2)  # worker-a stalls past its lease
        [again] = await ctx.writer.run(lambda s: store.outbox.claim_due(
            s, clock.now, "worker-b", lease=timedelta(seconds=60)))
        assert again.delivery.id == claimed.delivery.id
        late = store.outbox.Attempt(delivery_id=claimed.delivery.id, attempt=1, at=clock.now,
                                    status=200, latency_ms=1.0, outcome="delivered",
                                    response=None, worker="worker-a")
        assert await ctx.writer.run(lambda s: store.outbox.finish_attempts(
            s, [store.outbox.Finish(late, status="delivered", next_attempt_at=None,
                                    error=None, worker="worker-a")])) == [False]
        assert (await delivery(ctx)).status == "pending"
        assert await attempts(ctx) == []
    finally:
        await ctx.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def either(request: pytest.FixtureRequest, tmp_path: Path,
                 receiver: Receiver) -> AsyncIterator[tuple[AppContext, Clock]]:
    """A context on each database, with the injected clock."""
    async with throwaway_database(request.param, tmp_path) as url:
        clock = Clock()
        ctx = make_ctx(url, receiver.url, clock)
        try:
            yield ctx, clock
        finally:
            await ctx.close()


async def test_a_claim_takes_the_oldest_due_up_to_its_limit(
        either: tuple[AppContext, Clock]) -> None:
    ctx, clock = either
    await setup(ctx, n=7)
    async with ctx.sessions() as session:
        queue = sorted((await session.exec(sa.select(DeliveryRow.next_attempt_at,
                                                     DeliveryRow.id))).all())
    lease = timedelta(seconds=60)
    taken = []
    for worker, limit in (("a", 2), ("b", 2), ("c", 10), ("d", 10)):
        claimed = await ctx.writer.run(lambda s, w=worker, n=limit: (
            store.outbox.claim_due(s, clock.now, w, lease=lease, limit=n)))
        taken.append([c.delivery.id for c in claimed])
    assert taken == [[i for _, i in queue[:2]], [i for _, i in queue[2:4]],
                     [i for _, i in queue[4:]], []]


async def test_attempts_recorded_together_each_need_their_claim(
        either: tuple[AppContext, Clock]) -> None:
    ctx, clock = either
    await setup(ctx, n=2)
    first, second = await ctx.writer.run(lambda s: store.outbox.claim_due(
        s, clock.now, "worker-a", lease=timedelta(seconds=1)))
    clock.now += timedelta(seconds=2)  # worker-a's leases run out; b takes one
    [taken] = await ctx.writer.run(lambda s: store.outbox.claim_due(
        s, clock.now, "worker-b", lease=timedelta(seconds=60), limit=1))
    assert taken.delivery.id == first.delivery.id

    def finish(claimed: store.outbox.ClaimedDelivery) -> store.outbox.Finish:
        attempt = store.outbox.Attempt(
            delivery_id=claimed.delivery.id, attempt=1, at=clock.now, status=200,
            latency_ms=1.0, outcome="delivered", response=None, worker="worker-a")
        return store.outbox.Finish(attempt, status="delivered", next_attempt_at=None,
                                   error=None, worker="worker-a")

    assert await asyncio.gather(*(ctx.writer.run_batched(
        store.outbox.finish_attempts, finish(c)) for c in (first, second))) == [False, True]
    async with ctx.sessions() as session:
        rows = {r.id: r for r in (await session.exec(sa.select(DeliveryRow))).scalars()}
    assert rows[first.delivery.id].status == "pending"
    assert rows[first.delivery.id].claimed_by == "worker-b"
    assert rows[second.delivery.id].status == "delivered"
    assert rows[second.delivery.id].delivered_at == clock.now
    assert rows[second.delivery.id].claimed_by is None
    assert [a.delivery_id for a in await attempts(ctx)] == [second.delivery.id]


def _real_clock_ctx(url: str, receiver_url: str) -> AppContext:
    ctx = make_ctx(url, receiver_url, Clock())
    ctx.clock = lambda: datetime.now(UTC)  # leases run out in real time here
    return ctx


async def test_a_slow_send_keeps_its_claim_past_the_lease(tmp_path: Path,
                                                          receiver: Receiver) -> None:
    receiver.script = [Reply(200, delay=2.0)]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    a, b = _real_clock_ctx(url, receiver.url), _real_clock_ctx(url, receiver.url)
    lease = timedelta(seconds=0.6)
    first, second = Outbox(a, lease=lease), Outbox(b, lease=lease)
    try:
        await setup(a)
        sending = asyncio.create_task(first.deliver_due())
        await until(lambda: receiver.received or sending.done(), "the first send")
        # The send takes over three leases; renewed, the claim stays with the first worker.
        while not sending.done():
            assert await second.deliver_due() == 0
            await asyncio.sleep(0.1)
        assert await sending == 1
        assert len(receiver.received) == 1
        assert (await delivery(a)).status == "delivered"
    finally:
        for worker in (first, second):
            await worker.client.aclose()
        await a.close()
        await b.close()


async def test_a_dead_workers_delivery_is_sent_again_within_its_lease(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [Reply(200, delay=30.0), Reply(200)]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    a, b = _real_clock_ctx(url, receiver.url), _real_clock_ctx(url, receiver.url)
    lease = timedelta(seconds=1)
    first, second = Outbox(a, lease=lease), Outbox(b, lease=lease)
    try:
        [event] = await setup(a)
        sending = asyncio.create_task(first.deliver_due())
        await until(lambda: receiver.received, "the first send")
        sending.cancel()  # the worker dies mid-send: nothing renews its claim any more
        died = asyncio.get_running_loop().time()
        while await second.deliver_due() == 0:
            assert asyncio.get_running_loop().time() - died < 5, "never sent again"
            await asyncio.sleep(0.1)
        assert asyncio.get_running_loop().time() - died < lease.total_seconds() + 1
        assert [r.headers["webhook-id"] for r in receiver.received] == [event.id, event.id]
        assert (await delivery(a)).status == "delivered"
    finally:
        for worker in (first, second):
            await worker.client.aclose()
        await a.close()
        await b.close()


async def test_a_hanging_subscriber_holds_only_its_own_sends(
        tmp_path: Path, receiver: Receiver) -> None:
    # The worker claims as sends finish, not a batch at a time: events raised while one
    # subscriber hangs reach the others at once, not after that subscriber's timeout.
    async with running(Receiver(script=[Reply(hang=True)])) as hanging:
        clock = Clock()
        ctx = make_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", receiver.url, clock)
        ctx.config = ctx.config.model_copy(update={"subscriptions": (
            *ctx.config.subscriptions,
            ctx.config.subscriptions[0].model_copy(
                update={"name": "hangs", "url": f"{hanging.url}/hook"}))})
        outbox = Outbox(ctx, timeout=2)
        stopping = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        try:
            [event] = await setup(ctx)
            worker = asyncio.create_task(outbox.run(stopping))
            await hanging.wait_for(1)
            await receiver.wait_for(1)
            later = [Event(id=new_id(), type=EventType.PROBE_FAILED, timestamp=clock(),
                           provider="relay", run_id=f"run{n}", data={"code": 550})
                     for n in range(2, 5)]
            await ctx.writer.run(lambda s: store.events.add_events(s, later, clock()))
            ctx.outbox_wake.set()
            await receiver.wait_for(4)
            async with ctx.sessions() as session:
                hung = (await session.exec(sa.select(DeliveryRow).join(
                    SubscriptionRow, SubscriptionRow.id == DeliveryRow.subscription_id)
                    .where(SubscriptionRow.name == "hangs"))).scalars().all()
            assert len(hung) == 4
            [first] = [row for row in hung if row.event_id == event.id]
            assert first.attempts == 0  # still in its 2 s timeout: nothing waited for it
        finally:
            stopping.set()
            if worker is not None:
                await asyncio.wait_for(worker, 10)  # the hanging send ends by its timeout
            await ctx.close()
