"""Three outbox workers on one PostgreSQL database, one Slack URL between them: the
messages arrive at most one a second (Slack's pace per webhook URL), each once. And
the claim they share, on PostgreSQL: of simultaneous claimants exactly one is granted.

The workers are three AppContexts, each with its own engine and connection pool, as
three replicas would be; they run their real loops (`Outbox.run`) in real time, and
the loopback receiver timestamps each request as it arrives.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from monitor.service.outbox import Outbox
from monitor.store.db import make_engine, migrate, sessions
from monitor.store.pacing import claim_turn
from monitor.store.tables import DeliveryAttemptRow, DeliveryRow, PaceRow
from monitor.webhooks.channels import channel_for
from monitor.webhooks.limits import DeliveryLimiter, rate_key
from tests.databases import postgres_database
from tests.receivers import Receiver, running
from tests.unit.test_outbox import setup
from tests.unit.test_pacing import slack_ctx
from tests.waiting import until

EVENTS = 7
# Event-loop wake-ups and commits on a loaded 2-core machine, not a second message (a
# lost pace gives gaps of 1-10 ms).
JITTER = 0.15  # seconds


async def test_three_replicas_send_one_message_a_second_to_one_slack_url() -> None:
    pace = channel_for("slack").pace_per_url
    assert pace == 1.0
    async with running(Receiver()) as receiver, postgres_database() as url:
        slack_url = f"{receiver.url}/slack"
        replicas = [slack_ctx(url, slack_url, lambda: datetime.now(UTC)) for _ in range(3)]
        # Two deliveries a batch: each replica holds some of the queue at once, and
        # paces its own two locally as well as against the others.
        workers = [Outbox(ctx, limiter=DeliveryLimiter(overall=2)) for ctx in replicas]
        stopping = asyncio.Event()
        loops: list[asyncio.Task[None]] = []
        try:
            events = await setup(replicas[0], n=EVENTS)
            loops = [asyncio.create_task(w.run(stopping)) for w in workers]
            await until(lambda: len(receiver.received) >= EVENTS or any(t.done() for t in loops),
                        f"{EVENTS} messages", within=EVENTS * pace + 20)
            stopping.set()
            await asyncio.gather(*loops)  # each finishes the batch in hand
            async with replicas[0].sessions() as session:
                statuses = (await session.exec(sa.select(DeliveryRow.status))).scalars().all()
                senders = (await session.exec(sa.select(DeliveryAttemptRow.worker))
                           ).scalars().all()
                paces = (await session.exec(sa.select(PaceRow))).scalars().all()
        finally:
            stopping.set()
            await asyncio.gather(*loops, return_exceptions=True)
            for ctx in replicas:
                await ctx.close()
    arrivals = sorted(r.at for r in receiver.received)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
    # Each gap: a lost pace gives gaps of milliseconds. One message arriving late (its
    # send was slow, on a loaded machine) shortens the gap after it but not the span.
    assert min(gaps) >= pace / 2, gaps
    assert arrivals[-1] - arrivals[0] >= (EVENTS - 1) * pace - JITTER, gaps
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert ids == dict.fromkeys((e.id for e in events), 1)  # every event, once
    assert statuses == ["delivered"] * EVENTS
    assert set(senders) == {ctx.replica for ctx in replicas}  # all three took turns
    # The shared pace is kept under the URL's digest: the URL, a credential, is not.
    assert [p.key for p in paces] == [rate_key(slack_url)]


async def test_of_simultaneous_claims_on_postgresql_exactly_one_is_granted() -> None:
    async with postgres_database() as url:
        engine = make_engine(url)
        try:
            await migrate(engine)
            key, second = rate_key("https://hooks.slack.com/services/T0/B0/x"), timedelta(seconds=1)
            t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

            async def claim(now: datetime) -> datetime | None:
                async with sessions(engine)() as session:  # a connection each
                    return await claim_turn(session, key, now, second)

            # (when, how many granted, what the others are told): the row's first insert
            # races, then the conditional update does.
            ticks = [(t0, 1, t0 + second), (t0 + 3 * second, 1, t0 + 4 * second),
                     (t0 + 3.5 * second, 0, t0 + 4 * second), (t0 + 4 * second, 1, t0 + 5 * second)]
            for now, granted, told in ticks:
                results = await asyncio.gather(*(claim(now) for _ in range(8)))
                assert results.count(None) == granted, (now, results)
                assert set(results) - {None} == {told}
        finally:
            await engine.dispose()
