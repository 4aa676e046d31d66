"""Storage on SQLite and PostgreSQL: migrations, newer-schema refusal, one-transaction writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from monitor import store
from monitor.config import Config
from monitor.events.model import Event, EventType
from monitor.ids import new_id
from monitor.service.context import AppContext
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import (
    SchemaTooNew,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    sessions,
)
from monitor.store.tables import DeliveryRow, SubscriptionRow
from monitor.store.writer import within
from tests.integration.test_crypto import at_revision
from tests.unit.test_detect import run as run_result

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def test_upgrade_from_empty_and_idempotent(url: str) -> None:
    engine = make_engine(url)
    try:
        assert await current_revision(engine) is None
        await migrate(engine)
        assert await current_revision(engine) == head_revision()
        await migrate(engine)  # a second start changes nothing
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert {"run", "event", "delivery", "provider_state", "slot_claim"} <= set(tables)
        assert "step_result" not in tables  # never read: the steps are in run.result
    finally:
        await engine.dispose()


async def test_indexes_cover_what_retention_filters_on(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)

        def indexed(connection: sa.Connection) -> set[tuple[str, str]]:
            inspector = sa.inspect(connection)
            return {(table, index["column_names"][0])
                    for table in inspector.get_table_names()
                    for index in inspector.get_indexes(table)}

        async with engine.connect() as connection:
            have = await connection.run_sync(indexed)
        for table, column in (("run", "started_at"), ("receive_result", "checked_at"),
                              ("slot_claim", "claimed_at"), ("delivery", "created_at"),
                              ("event", "timestamp"), ("campaign_check", "created_at")):
            assert (table, column) in have, (table, column)
    finally:
        await engine.dispose()


async def test_refuses_a_newer_schema(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.execute(sa.text("UPDATE alembic_version SET version_num='9999'"))
        with pytest.raises(SchemaTooNew, match="9999"):
            await migrate(engine)
    finally:
        await engine.dispose()


def _ctx(url: str, **config: object) -> AppContext:
    return AppContext.create(Config.model_validate(config), url)


async def test_events_and_outbox_rows_are_written_together(url: str) -> None:
    ctx = _ctx(url, subscriptions=[
        {"name": "all", "kind": "generic", "url": "https://a.example/hook"},
        {"name": "probe-only", "kind": "generic", "url": "https://b.example/hook",
         "events": ["probe.*"]},
        {"name": "other-provider", "kind": "generic", "url": "https://c.example/hook",
         "providers": ["elsewhere"]},
    ])
    try:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        events = [Event(id=new_id(), type=EventType.PROBE_FAILED, timestamp=NOW,
                        provider="p"),
                  Event(id=new_id(), type=EventType.DELIVERY_FAILED, timestamp=NOW,
                        provider="p")]
        queued = await ctx.writer.run(lambda s: store.events.add_events(s, events, NOW))
        assert queued == 3  # all: 2 events, probe-only: 1, other-provider: 0
        async with ctx.sessions() as session:
            subs = {s.id: s.name for s in (await session.exec(sa.select(SubscriptionRow)))
                    .scalars()}
            rows = (await session.exec(sa.select(DeliveryRow))).scalars().all()
            assert sorted(subs[r.subscription_id] for r in rows) == ["all", "all", "probe-only"]
            assert all(s.startswith("whsec_") for s in
                       (await session.exec(sa.select(SubscriptionRow.secrets))).scalars()
                       for s in s)
    finally:
        await ctx.close()


async def test_failed_transaction_leaves_no_event_and_no_outbox_row(url: str) -> None:
    ctx = _ctx(url, subscriptions=[{"name": "all", "kind": "generic",
                                     "url": "https://a.example/hook"}])
    try:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        event = Event(id=new_id(), type=EventType.PROBE_FAILED, timestamp=NOW,
                      provider="p")
        with pytest.raises(RuntimeError):
            async with ctx.sessions() as session, session.begin():
                await within(session, lambda s: store.events.add_events(s, [event], NOW))
                raise RuntimeError("crash between event and commit")
        async with ctx.sessions() as session:
            assert await store.events.list_events(session) == []
            assert await store.outbox.outbox_depth(session) == 0
    finally:
        await ctx.close()


async def test_slot_claimed_once(url: str) -> None:
    ctx = _ctx(url)
    try:
        await migrate(ctx.engine)
        lease = timedelta(seconds=40)

        async def claim(slot: int, replica: str) -> bool:
            return await ctx.writer.run(lambda s: store.runs.claim_slot(s, "p", slot, replica,
                                                                        NOW, lease))

        assert await claim(42, "replica-a")
        assert not await claim(42, "replica-b")
        assert await claim(43, "replica-b")
    finally:
        await ctx.close()


async def test_config_subscription_secret_is_kept_across_restarts(url: str) -> None:
    config = {"subscriptions": [{"name": "s", "kind": "generic", "url": "https://x.example/"}]}
    secrets_seen = []
    for _ in range(2):
        ctx = _ctx(url, **config)
        try:
            await migrate(ctx.engine)
            await sync_config_subscriptions(ctx)
            async with ctx.sessions() as session:
                row = (await session.exec(sa.select(SubscriptionRow))).scalars().one()
                secrets_seen.append(row.secrets)
        finally:
            await ctx.close()
    assert secrets_seen[0] == secrets_seen[1]


async def test_prune_deletes_old_runs_only(url: str) -> None:
    from tests.unit.test_detect import run

    ctx = _ctx(url)
    try:
        await migrate(ctx.engine)
        old = run().model_copy(update={"run_id": "old", "started_at": NOW - timedelta(days=40)})
        new = run().model_copy(update={"run_id": "new", "started_at": NOW})
        await ctx.writer.run(lambda s: (store.runs.add_run(s, old), store.runs.add_run(s, new)))
        async with ctx.sessions() as session:
            counts = await store.retention.prune(session, NOW - timedelta(days=30))
        assert counts["runs"] == 1
        async with ctx.sessions() as session:
            assert [r.id for r in await store.runs.recent_runs(session, "p")] == ["new"]
    finally:
        await ctx.close()



async def test_first_runs_of_a_provider_do_not_collide(url: str) -> None:
    from monitor.events.state import Health, ProviderState

    ctx = _ctx(url)
    try:
        await migrate(ctx.engine)

        def first_run(session: Session) -> None:
            state = store.runs.load_state(session, "p", NOW)
            store.runs.save_state(session, "p", state.model_copy(update={
                "consecutive_failures": state.consecutive_failures + 1}), NOW)

        await asyncio.gather(ctx.writer.run(first_run), ctx.writer.run(first_run))
        state = await ctx.writer.run(lambda s: store.runs.load_state(s, "p", NOW))
        assert state.consecutive_failures == 2 and state.health is Health.UNKNOWN
        assert isinstance(state, ProviderState)
    finally:
        await ctx.close()


def test_replica_names_fit_the_claim_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.service.context import replica_name

    monkeypatch.setenv("HOSTNAME", "payments-platform-production-delivery-monitor-7f9c8d6b5-x2k4q")
    assert len(replica_name()) <= 64


async def test_the_migrations_build_exactly_the_models(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    engine = make_engine(url)
    try:
        await migrate(engine)

        def differences(connection: sa.Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            return list(compare_metadata(context, SQLModel.metadata))

        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
        assert diff == [], diff
    finally:
        await engine.dispose()


async def test_upgrading_gives_existing_providers_the_summary_of_their_last_run(
        url: str) -> None:
    result = run_result(rcpt=(451, "4.7.1"), not_after=NOW + timedelta(days=9))
    engine = make_engine(url)
    try:
        await at_revision(engine, "0008")
        async with engine.begin() as connection:
            await connection.execute(sa.text(
                "INSERT INTO run (id, provider, started_at, duration_ms, ok, result) "
                "VALUES (:id, 'p', :now, 50, false, :result)"),
                {"id": result.run_id, "now": NOW, "result": result.model_dump_json()})
            await connection.execute(sa.text(
                "INSERT INTO provider_state (provider, state, last_run_id, updated_at) "
                "VALUES ('p', '{}', :id, :now)"), {"id": result.run_id, "now": NOW})
        await migrate(engine)
        async with AppContext(config=Config(), engine=engine,
                              sessions=sessions(engine)).sessions() as session:
            row = await store.runs.state(session, "p")
        assert row is not None and row.summary is not None
        last = row.summary["last_run"]
        assert (last["failed_step"], last["code"]) == ("rcpt", 451)
        assert last["certificate_not_after"].startswith("2026-12-08")
        assert row.summary["health"] == "unknown" and row.summary["codes"] == {}
    finally:
        await engine.dispose()


async def test_a_run_stored_as_encoded_text_reads_back_as_its_document(url: str) -> None:
    # add_run binds pydantic's JSON text as it is (EncodedJSON); what comes back must be
    # the same document sa.JSON would have stored, odd characters included.
    result = run_result(rcpt=(550, "5.1.1")).model_copy(update={"run_id": "r-encoded"})
    steps = (*result.steps[:-1], result.steps[-1].model_copy(
        update={"text": 'no such user "é" \\ <b>\u2028\x00'}))
    result = result.model_copy(update={"steps": steps})
    ctx = AppContext.create(Config(), url)
    try:
        await migrate(ctx.engine)
        await ctx.writer.run(lambda session: store.runs.add_run(session, result, slot=7))
        async with ctx.sessions() as session:
            stored = await store.runs.last_run(session, result.provider)
        assert stored is not None and stored.slot == 7
        assert stored.result == result.model_dump(mode="json")
    finally:
        await ctx.close()
