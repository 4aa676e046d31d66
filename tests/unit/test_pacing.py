"""The pace shared by replicas (monitor.store.pacing) on SQLite, with the time injected;
and the outbox's use of it: no turn, no send.

Three replicas on PostgreSQL sending to one URL: tests/integration/test_pacing.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.config import Config
from monitor.service.context import AppContext
from monitor.service.outbox import Outbox
from monitor.store.db import make_engine, migrate, sessions
from monitor.store.pacing import MAX_AHEAD, claim_turn
from monitor.store.tables import DeliveryAttemptRow, PaceRow
from monitor.webhooks.limits import DeliveryLimiter, rate_key
from monitor.webhooks.retry import RetryPolicy
from tests.receivers import Receiver, running
from tests.unit.test_outbox import Clock, delivery, setup
from tests.unit.webhooks.test_limits import FakeClock
from tests.waiting import until

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
URL = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
KEY = rate_key(URL)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[sa.ext.asyncio.AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _claim(engine: sa.ext.asyncio.AsyncEngine, now: datetime, key: str = KEY,
                 interval: timedelta = SECOND) -> datetime | None:
    async with sessions(engine)() as session:
        return await claim_turn(session, key, now, interval)


async def test_a_turn_a_second_as_ticks(db: sa.ext.asyncio.AsyncEngine) -> None:
    assert await _claim(db, T0) is None  # the first claim: granted, the row made
    assert await _claim(db, T0) == T0 + SECOND  # the same moment: wait for T0 + 1 s
    assert await _claim(db, T0 + SECOND / 2) == T0 + SECOND
    assert await _claim(db, T0 + SECOND) is None  # exactly on time: granted
    assert await _claim(db, T0 + SECOND * 1.9) == T0 + SECOND * 2
    assert await _claim(db, T0 + SECOND * 5) is None  # after a quiet spell: at once
    assert await _claim(db, T0 + SECOND * 5, interval=SECOND / 2) == T0 + SECOND * 6
    assert await _claim(db, T0, key=rate_key(URL + "2")) is None  # another URL: its own


async def test_a_turn_from_a_fast_clock_is_taken_not_waited_for(
        db: sa.ext.asyncio.AsyncEngine) -> None:
    assert await _claim(db, T0 + timedelta(hours=1)) is None  # a replica an hour ahead
    assert await _claim(db, T0) is None  # not a stall until then: taken over
    assert await _claim(db, T0) == T0 + SECOND
    # Ahead by less than the margin: a clock that is merely a little off is waited for.
    assert await _claim(db, T0 + SECOND, interval=MAX_AHEAD) is None
    assert await _claim(db, T0 + SECOND) == T0 + SECOND + MAX_AHEAD


async def test_of_simultaneous_claims_exactly_one_is_granted(
        db: sa.ext.asyncio.AsyncEngine) -> None:
    for now in (T0, T0 + SECOND * 3):  # the row's first insert races too
        results = await asyncio.gather(*(_claim(db, now) for _ in range(6)))
        assert results.count(None) == 1
        assert set(results) - {None} == {now + SECOND}


async def test_only_the_urls_digest_is_stored(db: sa.ext.asyncio.AsyncEngine) -> None:
    with pytest.raises(ValueError, match="sha256"):
        await _claim(db, T0, key=URL)
    await _claim(db, T0)
    async with sessions(db)() as session:
        rows = (await session.exec(sa.select(PaceRow))).scalars().all()
    assert [(r.key, r.next_at) for r in rows] == [(KEY, T0 + SECOND)]


async def test_the_overall_slot_is_free_while_a_turn_is_waited_for() -> None:
    clock = FakeClock()
    limiter = DeliveryLimiter(overall=1, per_subscriber=1, clock=clock, sleep=clock.sleep)
    answers: list[float | None] = [1.5, 0.5, None]
    held: list[bool] = []
    order: list[str] = []

    async def turn() -> float | None:
        held.append(limiter._overall.locked())  # asked holding the overall slot …
        return answers.pop(0)

    async def paced() -> None:
        async with limiter.slot("team", paced_url=URL, interval=1.0, turn=turn):
            order.append("slack")

    async def other() -> None:
        await asyncio.sleep(0)
        async with limiter.slot("ops"):
            order.append("generic")

    await asyncio.gather(paced(), other())
    assert held == [True, True, True] and answers == []
    assert clock.sleeps == [1.5, 0.5]  # … and waits without it: the generic one went first
    assert order == ["generic", "slack"]


def slack_ctx(database_url: str, hook_url: str, clock: Callable[[], datetime]) -> AppContext:
    """A replica with one Slack subscription, `hook_url` (a loopback receiver)."""
    config = Config.model_validate({
        "subscriptions": [{"name": "team", "kind": "slack", "url": hook_url}],
        "settings": {"allow_private_destinations": True, "allow_http_destinations": True}})
    ctx = AppContext.create(config, database_url)
    ctx.clock = clock
    return ctx


def _slack_ctx(tmp_path: Path, receiver: Receiver, clock: Clock) -> AppContext:
    return slack_ctx(f"sqlite+aiosqlite:///{tmp_path / 'db'}", f"{receiver.url}/slack", clock)


async def test_without_the_database_nothing_is_sent_and_it_is_sent_later(
        tmp_path: Path) -> None:
    async with running(Receiver()) as receiver:
        clock = Clock()
        ctx = _slack_ctx(tmp_path, receiver, clock)
        outbox = Outbox(ctx, policy=RetryPolicy(jitter=0))
        try:
            [event] = await setup(ctx)
            async with ctx.engine.begin() as connection:  # the pace, and only it, fails
                await connection.run_sync(PaceRow.__table__.drop)  # type: ignore[attr-defined]
            assert await outbox.deliver_due() == 1
            assert receiver.received == []  # not sent unpaced
            row = await delivery(ctx)
            assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, ctx.replica)
            assert ctx.outage.down  # counted like any outage: one line, then once a minute
            async with ctx.engine.begin() as connection:
                await connection.run_sync(PaceRow.__table__.create)  # type: ignore[attr-defined]
            assert await outbox.deliver_due() == 0  # the claim stands until it runs out
            clock.now += outbox.lease + SECOND
            assert await outbox.deliver_due() == 1
            assert [r.headers["webhook-id"] for r in receiver.received] == [event.id]
            assert (await delivery(ctx)).status == "delivered"
        finally:
            await outbox.client.aclose()
            await ctx.close()


async def test_a_turn_later_than_the_lease_gives_the_delivery_back(tmp_path: Path) -> None:
    async with running(Receiver()) as receiver:
        clock = Clock()
        ctx = _slack_ctx(tmp_path, receiver, clock)
        outbox = Outbox(ctx, lease=timedelta(seconds=1))
        try:
            [event] = await setup(ctx)
            taken = datetime.now(UTC)  # another replica took a turn 2 s long (wall time)
            async with ctx.sessions() as session:
                assert await claim_turn(session, rate_key(f"{receiver.url}/slack"), taken,
                                        2 * SECOND) is None
            assert await outbox.deliver_due() == 1
            assert receiver.received == []
            row = await delivery(ctx)
            assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, None)
            # Due again at its turn, on the outbox's own clock: about 2 s from now.
            assert SECOND < row.next_attempt_at - clock.now <= 2 * SECOND
            assert await outbox.deliver_due() == 0
            await until(lambda: datetime.now(UTC) >= taken + 2 * SECOND, "the turn")
            clock.now = row.next_attempt_at
            assert await outbox.deliver_due() == 1
            assert [r.headers["webhook-id"] for r in receiver.received] == [event.id]
            async with ctx.sessions() as session:
                attempts = (await session.exec(sa.select(DeliveryAttemptRow))).scalars().all()
            assert [a.attempt for a in attempts] == [1]  # the give-back counted no attempt
        finally:
            await outbox.client.aclose()
            await ctx.close()
