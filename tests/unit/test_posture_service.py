"""The scheduled posture job: state and events in one transaction, through the outbox to a
subscriber, once per change, on the one replica a domain falls to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from monitor import store
from monitor.config import Config
from monitor.events.model import EventType
from monitor.service.context import AppContext
from monitor.service.outbox import Outbox
from monitor.service.partition import owner
from monitor.service.posture import run_posture
from monitor.service.scheduler import build_scheduler
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import migrate
from monitor.store.tables import DeliveryRow
from monitor.webhooks.retry import RetryPolicy
from tests.receivers import Receiver, running
from tests.unit.checks.dnsserver import DnsServer, txt
from tests.unit.posture.zones import good_domain

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DOMAIN = "watch.test"


def config(dns: DnsServer, receiver_url: str = "http://127.0.0.1:9/") -> Config:
    return Config.model_validate({
        "domains": [DOMAIN],
        "subscriptions": [{"name": "ops", "kind": "generic", "url": f"{receiver_url}hook",
                           "secret": SECRET, "events": ["domain.*"]}],
        "settings": {"dns_server": f"127.0.0.1:{dns.port}", "dnsbl_zones": ["zen.test"],
                     "dnsbl_domain_zones": ["dbl.test"], "posture_interval": "1h",
                     "allow_private_destinations": True, "allow_http_destinations": True}})


@pytest.fixture
async def dns() -> AsyncIterator[DnsServer]:
    async with DnsServer(good_domain(DOMAIN)) as server:
        yield server


async def started(cfg: Config, url: str) -> AppContext:
    ctx = AppContext.create(cfg, url)
    await migrate(ctx.engine)
    await sync_config_subscriptions(ctx)
    return ctx


async def test_a_change_reaches_the_subscriber_once(tmp_path: Path, dns: DnsServer) -> None:
    async with running(Receiver()) as receiver:
        ctx = await started(config(dns, receiver.url + "/"),
                            f"sqlite+aiosqlite:///{tmp_path / 'db'}")
        outbox = Outbox(ctx, policy=RetryPolicy(jitter=0))
        try:
            assert await run_posture(ctx, DOMAIN) == []  # the baseline
            dns.records[(f"_dmarc.{DOMAIN}", "TXT")] = [txt("v=DMARC1; p=none; rua=mailto:d@x")]
            dns.records[(f"{DOMAIN}.dbl.test", "A")] = ["127.0.1.2"]
            events = await run_posture(ctx, DOMAIN)
            assert [e.type for e in events] == [EventType.DOMAIN_POSTURE_CHANGED,
                                                EventType.DOMAIN_BLOCKLISTED]
            assert await run_posture(ctx, DOMAIN) == []  # once
            assert await outbox.deliver_due() == 2
            bodies = [Webhook(SECRET).verify(r.body, r.headers) for r in receiver.received]
            assert sorted(b["type"] for b in bodies) == ["domain.blocklisted",
                                                         "domain.posture_changed"]
            changed = next(b for b in bodies if b["type"] == "domain.posture_changed")
            assert changed["data"]["domain"] == DOMAIN and changed["data"]["provider"] is None
            assert [f["id"] for f in changed["data"]["added"]] == ["dmarc.policy_none"]
            assert [f["id"] for f in changed["data"]["removed"]] == ["dmarc.ok"]
            # Delisted: one more event, resolving the listing.
            del dns.records[(f"{DOMAIN}.dbl.test", "A")]
            assert [e.type for e in await run_posture(ctx, DOMAIN)] == [
                EventType.DOMAIN_DELISTED]
        finally:
            await ctx.close()


async def test_a_domain_runs_on_the_replica_it_falls_to(tmp_path: Path, dns: DnsServer) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    cfg = config(dns)
    a, b = await started(cfg, url), AppContext.create(cfg, url)
    try:
        a.replica, b.replica = "replica-a", "replica-b"
        a.live = b.live = ("replica-a", "replica-b")
        queries = len(dns.queries)
        its = a if owner(f"domain:{DOMAIN}", a.live) == "replica-a" else b
        other = b if its is a else a
        await run_posture(other, DOMAIN)
        assert len(dns.queries) == queries  # not its domain: not even looked up
        await run_posture(its, DOMAIN)
        async with its.sessions() as session:
            row = await store.posture.load(session, DOMAIN)
        assert row is not None and row.version == 1
    finally:
        await a.close()
        await b.close()


async def test_two_writers_of_one_change_raise_it_once(tmp_path: Path, dns: DnsServer) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    ctx = await started(config(dns), url)
    try:
        await run_posture(ctx, DOMAIN)
        async with ctx.sessions() as session:
            row = await store.posture.load(session, DOMAIN)
        assert row is not None
        # Another replica wrote a newer state since this one read version 1.
        async with ctx.sessions() as session:
            assert await store.posture.save(session, DOMAIN, row.state, 1, [], ctx.clock())
        async with ctx.sessions() as session:
            assert not await store.posture.save(session, DOMAIN, row.state, 1, [], ctx.clock())
            assert not await store.posture.save(session, DOMAIN, row.state, None, [],
                                                ctx.clock())
            deliveries = (await session.exec(sa.select(DeliveryRow))).scalars().all()
        assert deliveries == []
    finally:
        await ctx.close()


def test_the_scheduler_has_a_posture_job_per_domain(tmp_path: Path) -> None:
    cfg = Config.model_validate({"domains": ["a.test", "b.test"],
                                 "settings": {"posture_interval": "2h"}})
    ctx = AppContext.create(cfg, f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    jobs = {j.id: j for j in build_scheduler(ctx).get_jobs()}
    assert {"posture:a.test", "posture:b.test"} <= set(jobs)
    assert jobs["posture:a.test"].trigger.interval.total_seconds() == 7200


def test_domains_default_to_the_providers_from_domains() -> None:
    cfg = Config.model_validate({"providers": [
        {"name": "a", "host": "h", "from": "x@News.Test"},
        {"name": "b", "host": "h", "from": "y@news.test"},
        {"name": "c", "host": "h"}]})
    assert cfg.posture_domains() == ("news.test",)
