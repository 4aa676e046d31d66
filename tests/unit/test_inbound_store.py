"""Inbound mail in the database: a POST to one replica is found by another's receive job.

Two AppContexts on one database are two replicas (as in tests/integration/test_replicas.py):
on a fresh PostgreSQL database (tests/databases.py) and on one SQLite file. The
receiving replica serves only the route (lifespan off: no scheduler of its own), so
whatever records the arrival is the other replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from monitor import store
from monitor.api import Tokens
from monitor.config import Config
from monitor.receive import ReceiveOptions
from monitor.receive.backend import MAX_HEADER_BYTES, Trace
from monitor.receive.inbound import InboundBackend
from monitor.service import receiving
from monitor.service.context import AppContext
from monitor.service.inbound import DatabaseInbound
from monitor.service.receiving import poll_receive
from monitor.service.serve import receive_options, service_app
from monitor.store.db import migrate
from monitor.store.inbound import find_messages
from monitor.store.tables import InboundMessageRow, PendingTokenRow, ReceiveResultRow
from tests.asgi_server import serve_app
from tests.databases import throwaway_database

SECRET = "inbound-secret-2"
CONFIG = Config.model_validate({
    # Its `to` makes the mailbox a seed; at 24 h its slot does not come up during a test.
    "providers": [{"name": "esp", "host": "127.0.0.1", "port": 9, "helo": "t.test",
                   "mode": "send", "from": "probe@t.test", "to": ["hook"], "interval": "24h"}],
    "mailboxes": [{"name": "hook", "address": "seed@inbound.test", "kind": "inbound",
                   "token": SECRET, "deliver_within": "60s"}]})
TOKENS = Tokens.parse("admin-token-0123456789abcdef:admin", "test")


def probe_message(token: str, *, body: bytes = b"") -> bytes:
    return (f"Received: from mx.esp.example by inbound.esp.example; "
            f"{format_datetime(datetime.now(UTC))}\r\nFrom: probe@t.test\r\n"
            f"To: seed@inbound.test\r\nSubject: probe\r\nX-Delivery-Monitor-Token: {token}"
            f"\r\n\r\nToken: {token}\r\n").encode() + body


@pytest.fixture(params=["postgresql", "sqlite"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def replicas(database: str) -> AsyncIterator[tuple[AppContext, AppContext]]:
    a, b = AppContext.create(CONFIG, database), AppContext.create(CONFIG, database)
    try:
        await migrate(a.engine)
        yield a, b
    finally:
        await a.close()
        await b.close()


async def add_pending(ctx: AppContext, token: str, accepted_at: datetime | None = None) -> None:
    accepted_at = accepted_at or datetime.now(UTC)
    await ctx.writer.run(lambda s: store.tokens.add_pending(
        s, token=token, run_id=f"run-{token}", provider="esp", mailbox="hook",
        accepted_at=accepted_at, deadline=accepted_at + timedelta(seconds=60)))


async def stored_tokens(ctx: AppContext) -> list[str | None]:
    async with ctx.sessions() as session:
        rows = (await session.exec(sa.select(InboundMessageRow))).scalars().all()
    return sorted((r.token for r in rows), key=str)


async def result_of(ctx: AppContext, token: str) -> ReceiveResultRow | None:
    async with ctx.sessions() as session:
        return await session.get(ReceiveResultRow, (token, "hook"))


async def post(url: str, raw: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await client.post("/inbound/hook", content=raw, headers={
            "Content-Type": "message/rfc822", "Authorization": f"Bearer {SECRET}"})


async def test_a_post_to_replica_a_is_found_by_replica_b_s_receive_job(
        replicas: tuple[AppContext, AppContext], tmp_path: Path) -> None:
    a, b = replicas
    await add_pending(a, "dm-across")
    async with AsyncExitStack() as stack:
        # A: the route only. B: the whole service, whose scheduler runs the receive job.
        url_a = await stack.enter_async_context(serve_app(service_app(
            a, TOKENS, ReceiveOptions(data_dir=tmp_path / "a")), lifespan="off"))
        response = await post(url_a, probe_message("dm-across"))
        assert response.status_code == 200, response.text
        assert not (tmp_path / "a" / "inbound").exists(), "nothing on replica A's disk"
        assert await stored_tokens(b) == ["dm-across"]

        await stack.enter_async_context(serve_app(service_app(
            b, TOKENS, ReceiveOptions(data_dir=tmp_path / "b")), lifespan="on"))
        deadline = time.monotonic() + 20
        while (row := await result_of(b, "dm-across")) is None:
            assert time.monotonic() < deadline, "replica B never recorded the arrival"
            await asyncio.sleep(0.1)
    assert row.arrived and row.placement == "inbox"
    assert row.result["backend"] == "inbound" and row.result["status"] == "arrived"
    # Recorded, not deleted yet: the message goes on a later pass of this mailbox.
    assert await stored_tokens(a) == ["dm-across"]
    assert not (tmp_path / "b" / "inbound").exists()


async def test_the_message_is_deleted_only_after_its_result_is_recorded(
        replicas: tuple[AppContext, AppContext], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = replicas
    options = receive_options(b, ReceiveOptions())
    await add_pending(a, "dm-first")
    await DatabaseInbound(a).put("hook", "dm-first", probe_message("dm-first"),
                                 datetime.now(UTC))
    real_settle = receiving.settle
    calls = 0

    async def settle_fails_once(ctx: AppContext, result: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection reset"))
        await real_settle(ctx, result)

    monkeypatch.setattr(receiving, "settle", settle_fails_once)
    with pytest.raises(sa.exc.OperationalError):
        await poll_receive(b, options)
    # Found but not recorded: still stored, and the token is back for the next pass.
    assert await stored_tokens(a) == ["dm-first"]
    async with a.sessions() as session:
        [pending] = (await session.exec(sa.select(PendingTokenRow))).scalars().all()
    assert pending.claimed_until is None

    assert await poll_receive(b, options) == 1
    assert (row := await result_of(a, "dm-first")) is not None and row.arrived
    assert await stored_tokens(a) == ["dm-first"], "recorded: deleted on the next pass"

    await add_pending(a, "dm-second")
    await DatabaseInbound(a).put("hook", "dm-second", probe_message("dm-second"),
                                 datetime.now(UTC))
    assert await poll_receive(b, options) == 1
    assert await stored_tokens(a) == ["dm-second"]  # the first went; the second waits its turn


async def test_a_scan_deletes_only_what_it_is_told_and_sweeps_stale_probes(
        replicas: tuple[AppContext, AppContext]) -> None:
    a, _ = replicas
    inbound = DatabaseInbound(a)
    now = datetime.now(UTC)
    for token, age in (("dm-want", 0), ("dm-done", 0), ("dm-old", 2), ("dm-old-awaited", 2)):
        await inbound.put("hook", token, probe_message(token), now - timedelta(days=age))
    options = ReceiveOptions(inbound_store=inbound)
    mailbox = CONFIG.mailboxes[0]
    backend = InboundBackend()

    scan = await backend.scan(mailbox, {"dm-want", "dm-old-awaited"}, options, Trace(),
                              delete={"dm-done"})
    assert set(scan.found) == {"dm-want", "dm-old-awaited"}
    assert not any(m.deleted for m in scan.found.values())
    assert scan.swept == 1 and scan.folders == ("INBOX",)
    assert scan.found["dm-want"].placement.value == "inbox"
    assert await stored_tokens(a) == ["dm-old-awaited", "dm-want"]

    # delete=None: what is found goes; and the old one nobody waits for now is swept.
    scan = await backend.scan(mailbox, {"dm-want"}, options, Trace())
    assert scan.found["dm-want"].deleted and scan.swept == 1
    assert await stored_tokens(a) == []


async def test_an_abandoned_scan_deletes_nothing(replicas: tuple[AppContext, AppContext]) -> None:
    a, _ = replicas
    inbound = DatabaseInbound(a)
    await inbound.put("hook", "dm-x", probe_message("dm-x"), datetime.now(UTC))
    trace = Trace()
    trace.abandon()  # the poller gave up before the scan got anywhere
    with pytest.raises(TimeoutError):
        await InboundBackend().scan(CONFIG.mailboxes[0], {"dm-x"},
                                    ReceiveOptions(inbound_store=inbound), trace)
    assert await stored_tokens(a) == ["dm-x"]


async def test_each_mailbox_keeps_only_its_newest(replicas: tuple[AppContext, AppContext]
                                                  ) -> None:
    a, b = replicas
    now = datetime.now(UTC)
    for i in range(5):  # from two replicas, as a load balancer would spread them
        await DatabaseInbound(a if i % 2 else b, keep=3).put(
            "hook", f"dm-{i}", probe_message(f"dm-{i}"), now + timedelta(seconds=i))
    await DatabaseInbound(a, keep=3).put("other", "dm-o", probe_message("dm-o"), now)
    async with a.sessions() as session:
        rows = (await session.exec(sa.select(InboundMessageRow))).scalars().all()
    assert sorted((r.mailbox, r.token) for r in rows) == [
        ("hook", "dm-2"), ("hook", "dm-3"), ("hook", "dm-4"), ("other", "dm-o")]


async def test_a_scan_reads_the_header_block_not_the_whole_body(
        replicas: tuple[AppContext, AppContext]) -> None:
    a, _ = replicas
    raw = probe_message("dm-big", body=b"x" * (2 * MAX_HEADER_BYTES))
    await DatabaseInbound(a).put("hook", "dm-big", raw, datetime.now(UTC))
    async with a.sessions() as session:
        [head] = await find_messages(session, "hook", ["dm-big"], head_bytes=100, limit=10)
        [row] = (await session.exec(sa.select(InboundMessageRow))).scalars().all()
    assert head.head == raw[:100] and row.raw == raw  # stored whole, read cut
    [message] = await DatabaseInbound(a).find("hook", ["dm-big"], 10)
    assert message.raw == raw[:MAX_HEADER_BYTES]


async def test_retention_prunes_old_messages_unless_their_token_is_awaited(
        replicas: tuple[AppContext, AppContext]) -> None:
    a, _ = replicas
    inbound = DatabaseInbound(a)
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    await add_pending(a, "dm-awaited", accepted_at=old)
    for token, when in (("dm-stale", old), ("dm-awaited", old), ("dm-new", now)):
        await inbound.put("hook", token, probe_message(token), when)
    async with a.sessions() as session:
        counts = await store.retention.prune(session, now - timedelta(days=30))
    assert counts["inbound_messages"] == 1
    assert await stored_tokens(a) == ["dm-awaited", "dm-new"]


async def test_a_post_while_the_database_is_away_is_503_and_counted(tmp_path: Path) -> None:
    # Nothing listens on port 1: every connection is refused, as in an outage.
    ctx = AppContext.create(CONFIG, "postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        async with serve_app(service_app(ctx, TOKENS, ReceiveOptions(data_dir=tmp_path)),
                             lifespan="off") as url:
            response = await post(url, probe_message("dm-away"))
    finally:
        await ctx.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"]["code"] == "unavailable"
    assert ctx.outage.down
    assert not (tmp_path / "inbound").exists(), "no fallback to the pod's disk"
