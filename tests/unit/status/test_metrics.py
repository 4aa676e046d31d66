"""/metrics by Prometheus' conventions, read back with prometheus-client's own parser:
per-provider gauges, histograms without a provider label, the outbox by state."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from monitor.config import Config
from monitor.probe.result import Step, StepResult
from monitor.receive import ReceiveOptions
from monitor.service.context import AppContext
from monitor.service.gauges import refresh_gauges
from monitor.service.probing import lateness, run_slot, slot_for
from monitor.service.serve import service_app
from monitor.store.db import migrate
from monitor.store.tables import DeliveryRow
from tests.unit.scripted_smtp import ScriptedServer
from tests.unit.status.conftest import PROVIDERS, TOKENS
from tests.unit.status.seed import NOW, arrival, config, probe

# Every label any monitor_* series may carry: each is bounded by config or an enum.
BOUNDED = {"provider", "step", "outcome", "failure_class", "type", "kind", "mailbox",
           "placement", "state", "subscription", "job", "le"}


async def scrape(ctx: AppContext, tmp_path: Path) -> dict[str, list[Sample]]:
    app = service_app(ctx, TOKENS, ReceiveOptions(data_dir=tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://m.test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    [found] = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


async def test_probe_gauges_round_trip_and_outbox(seeded_db: str, tmp_path: Path) -> None:
    copy = tmp_path / "metrics.db"
    shutil.copy(seeded_db, copy)  # a delivery is marked dead below
    ctx = AppContext.create(config(*PROVIDERS), f"sqlite+aiosqlite:///{copy}")
    ctx.clock = lambda: NOW
    try:
        good = probe("good", NOW, duration_ms=120)
        broken = probe("broken", NOW, ok=False, code=550, enhanced="5.1.1")
        earlier = probe("broken", NOW).model_copy(update={"steps": (
            *probe("broken", NOW).steps,
            StepResult(step=Step.DATA, command="DATA", code=354, text="go ahead"))})
        for result in (earlier, good, broken):
            ctx.metrics.observe_probe(result)
        for ms in (2_000, 4_000, 70_000):
            ctx.metrics.observe_receive(arrival("good", NOW, latency_ms=ms))
        async with ctx.sessions() as session, session.begin():
            pending = (await session.exec(sa.select(sa.func.count()).select_from(DeliveryRow)
                                          .where(DeliveryRow.status == "pending"))).one()[0]
            first = (await session.exec(sa.select(DeliveryRow.id).limit(1))).one()[0]
            await session.exec(sa.update(DeliveryRow).where(DeliveryRow.id == first)
                               .values(status="dead"))
        await refresh_gauges(ctx)
        families = await scrape(ctx, tmp_path)
    finally:
        await ctx.close()

    success = families["monitor_probe_success"]
    assert value(success, "monitor_probe_success", provider="good") == 1
    assert value(success, "monitor_probe_success", provider="broken") == 0
    codes = families["monitor_probe_reply_code"]
    assert value(codes, "monitor_probe_reply_code", provider="broken", step="rcpt") == 550
    assert value(codes, "monitor_probe_reply_code", provider="good", step="connect") == 220
    # broken's earlier run reached DATA; its last one stopped at RCPT: no stale DATA code.
    assert not [s for s in codes if s.labels == {"provider": "broken", "step": "data"}]
    assert good.tls is not None and good.tls.certificate is not None
    assert good.tls.certificate.not_after is not None
    assert value(families["monitor_tls_certificate_not_after_timestamp_seconds"],
                 "monitor_tls_certificate_not_after_timestamp_seconds",
                 provider="good") == good.tls.certificate.not_after.timestamp()
    assert value(families["monitor_probe_duration_seconds"], "monitor_probe_duration_seconds",
                 provider="good") == 0.12
    # Step latency: one histogram per step, across providers (three runs reached CONNECT).
    steps = families["monitor_step_latency_seconds"]
    assert value(steps, "monitor_step_latency_seconds_count", step="connect") == 3
    assert value(steps, "monitor_step_latency_seconds_count", step="data") == 1
    trip = families["monitor_receive_round_trip_seconds"]
    assert value(trip, "monitor_receive_round_trip_seconds_count") == 3
    assert value(trip, "monitor_receive_round_trip_seconds_bucket", le="5.0") == 2
    assert value(trip, "monitor_receive_round_trip_seconds_bucket", le="60.0") == 2
    placements = families["monitor_receive_results"]
    assert value(placements, "monitor_receive_results_total", provider="good",
                 mailbox="seed", placement="inbox") == 3
    outbox = families["monitor_outbox_deliveries"]
    assert pending > 1
    assert value(outbox, "monitor_outbox_deliveries", state="pending") == pending - 1
    assert value(outbox, "monitor_outbox_deliveries", state="dead") == 1
    assert value(outbox, "monitor_outbox_deliveries", state="delivered") == 0
    assert value(families["monitor_webhook_dead_letters"], "monitor_webhook_dead_letters",
                 subscription="ops-hook") == 1
    # Conventions: bounded labels only; no histogram is per provider.
    for name, samples in families.items():
        for sample in samples:
            assert set(sample.labels) <= BOUNDED, (name, sample.labels)
            if sample.name.endswith("_bucket"):
                assert "provider" not in sample.labels, name


async def test_scheduler_lateness_is_the_fire_time_minus_the_slot_boundary(
        tmp_path: Path) -> None:
    async with ScriptedServer() as server:
        provider_config = Config.model_validate({"providers": [
            {"name": "p", "host": "127.0.0.1", "port": server.port, "helo": "t.test",
             "interval": "1s", "timeout": "5s"}]})
        ctx = AppContext.create(provider_config, f"sqlite+aiosqlite:///{tmp_path / 'db'}")
        provider = provider_config.providers[0]
        try:
            await migrate(ctx.engine)
            slot = slot_for(provider, NOW)
            boundary = NOW - timedelta(seconds=lateness(provider, slot, NOW))
            fired = boundary + timedelta(milliseconds=250)
            ctx.clock = lambda: fired
            assert lateness(provider, slot_for(provider, fired), fired) == 0.25
            assert await run_slot(ctx, provider) is not None
            families = await scrape(ctx, tmp_path)
        finally:
            await ctx.close()
    samples = families["monitor_scheduler_lateness_seconds"]
    assert value(samples, "monitor_scheduler_lateness_seconds_count") == 1
    assert abs(value(samples, "monitor_scheduler_lateness_seconds_sum") - 0.25) < 1e-6
    assert value(samples, "monitor_scheduler_lateness_seconds_bucket", le="0.1") == 0
    assert value(samples, "monitor_scheduler_lateness_seconds_bucket", le="0.5") == 1
