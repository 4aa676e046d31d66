"""Three `monitor serve` processes on one fresh PostgreSQL database, as an operator runs them.

20 providers every 2 s (one toggled failing and back twice) and 10 providers every
20 s, all against scripted SMTP servers in the test's loop; one signed generic
webhook to a loopback receiver. While all three are up: every (provider, slot)
runs once and none is missed, claims are spread, each failure and recovery
reaches the receiver once. Then one replica is SIGKILLed right after it claims a
20 s slot, before it could record it: another replica takes the claim over
(`take_over_slots`) and runs it within the slot. The survivors stop on SIGTERM
with exit 0.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from standardwebhooks import Webhook

from monitor.config import Config, ProviderConfig
from monitor.service.probing import slot_for, slot_offset
from monitor.store.db import make_engine
from monitor.store.tables import DeliveryRow, EventRow, RunRow, SlotClaimRow
from tests.databases import postgres_database
from tests.integration.serve_procs import (
    SECRET,
    Replica,
    connect_provider,
    flaky_webhook,
    kill_all,
    select_rows,
    start_replicas,
    wait_ready,
)
from tests.receivers import Receiver, running
from tests.unit.scripted_smtp import Drip, ScriptedServer
from tests.waiting import eventually, until

FAST = [f"fast{i:02}" for i in range(19)] + ["flaky"]  # 20 at 2 s
SLOW = [f"slow{i}" for i in range(10)]  # 20 s: lease 2 + 2 + 5 = 9 s, well inside the slot
CYCLES = 2
ALL_UP_AT_LEAST = 20.0  # seconds with all three replicas up before one is killed
OK_BANNER, DOWN_BANNER = "220 flaky.test ESMTP ready", "421 4.3.2 Service shutting down"


def _config(fast: int, flaky: int, slow: int, receiver: str) -> dict[str, object]:
    providers = [connect_provider(name, fast, "2s", "1s") for name in FAST[:-1]]
    providers.append({**connect_provider("flaky", flaky, "2s", "1s"),
                      "thresholds": {"failure": 1, "recovery": 1}})
    providers += [connect_provider(name, slow, "20s", "2s") for name in SLOW]
    return {"providers": providers, **flaky_webhook(receiver)}


async def _all_delivered(engine: AsyncEngine) -> bool:
    deliveries = await select_rows(engine, DeliveryRow)
    return bool(deliveries) and all(d.status == "delivered" for d in deliveries)


def _events_received(receiver: Receiver) -> dict[str, set[str]]:
    """Event type → the event ids that reached the receiver (duplicates collapse)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for request in receiver.received:
        payload = json.loads(request.body)
        seen[payload["type"]].add(payload["data"]["event_id"])
    return seen


def _slot_end(provider: ProviderConfig, slot: int) -> datetime:
    interval = provider.interval.total_seconds()
    return datetime.fromtimestamp((slot + 1) * interval + slot_offset(provider), UTC)


async def test_three_replicas_run_every_slot_once_and_survive_a_kill_9(tmp_path: Path) -> None:
    fast_smtp, flaky_smtp = ScriptedServer(), ScriptedServer(banner=OK_BANNER)
    # NOOP answers over ~0.7 s: a killed claimant is always mid-probe, never done.
    slow_smtp = ScriptedServer(replies={"NOOP": Drip("250 2.0.0 OK", every=0.05)})
    async with fast_smtp, flaky_smtp, slow_smtp, running(Receiver()) as receiver, \
            postgres_database() as url:
        raw = _config(fast_smtp.port, flaky_smtp.port, slow_smtp.port, receiver.url)
        config = Config.model_validate(raw)
        config_file = tmp_path / "monitor.yaml"
        config_file.write_text(yaml.safe_dump(raw))
        engine = make_engine(url)
        replicas: list[Replica] = []
        try:
            started = time.monotonic()
            replicas = await start_replicas(3, config_file, url, tmp_path)
            await wait_ready(replicas, within=30)
            ready_at, ready_took = datetime.now(UTC), time.monotonic() - started

            # Flaky fails and recovers CYCLES times; each phase lasts three runs, so the
            # detector sees two more failures (or successes) after the one that raised.
            async def phase(cycle: int, banner: str, ok: bool, event: str) -> None:
                flaky_smtp.banner, since = banner, datetime.now(UTC)

                async def three_runs() -> bool:
                    return len(await select_rows(engine, RunRow, col(RunRow.provider) == "flaky",
                                           col(RunRow.started_at) >= since,
                                           col(RunRow.ok).is_(ok))) >= 3
                await eventually(three_runs, f"cycle {cycle}: three flaky runs with ok={ok}",
                                 within=15)
                await until(lambda: len(_events_received(receiver)[event]) >= cycle,
                            f"cycle {cycle}: {event} at the receiver", within=10)

            for cycle in range(1, CYCLES + 1):
                await phase(cycle, DOWN_BANNER, False, "probe.failed")
                await phase(cycle, OK_BANNER, True, "probe.recovered")
            # The all-up window lasts at least ALL_UP_AT_LEAST s before the kill.
            await until(lambda: (datetime.now(UTC) - ready_at).total_seconds()
                        >= ALL_UP_AT_LEAST, "the all-up window", within=ALL_UP_AT_LEAST + 1)
            await eventually(lambda: _all_delivered(engine), "the outbox to drain", within=15)

            # Kill whichever replica next claims a 20 s slot, right after the claim.
            watch_from = datetime.now(UTC)

            async def fresh_claim() -> SlotClaimRow | None:
                rows = await select_rows(engine, SlotClaimRow,
                                         col(SlotClaimRow.provider).in_(SLOW),
                                         col(SlotClaimRow.claimed_at) >= watch_from,
                                         col(SlotClaimRow.done).is_(False))
                return rows[0] if rows else None

            claim = await eventually(fresh_claim, "a fresh claim of a 20 s slot", within=25,
                                     every=0.01)
            victim = next(r for r in replicas if r.owns(claim.claimed_by))
            await victim.kill()
            killed_at = datetime.now(UTC)
            kill_delay = (killed_at - claim.claimed_at).total_seconds()
            survivors = [r for r in replicas if r is not victim]
            key = (col(SlotClaimRow.provider) == claim.provider,
                   col(SlotClaimRow.slot) == claim.slot)
            [after_kill] = await select_rows(engine, SlotClaimRow, *key)
            assert (after_kill.done, after_kill.claimed_by) == (False, claim.claimed_by), \
                "the kill came too late: the victim had recorded its run"

            slow_provider = config.provider(claim.provider)
            assert slow_provider is not None
            slot_end = _slot_end(slow_provider, claim.slot)

            async def taken_over() -> SlotClaimRow | None:
                [row] = await select_rows(engine, SlotClaimRow, *key)
                return row if row.done else None

            taken = await eventually(
                taken_over, f"{claim.provider} slot {claim.slot} run by a survivor",
                within=(slot_end - datetime.now(UTC)).total_seconds() + 1)
            takeover_after = (datetime.now(UTC) - claim.claimed_at).total_seconds()

            stop_started = time.monotonic()
            codes = await asyncio.gather(*(r.terminate(within=30) for r in survivors))
            stop_took = time.monotonic() - stop_started
            assert codes == [0, 0], "\n".join(r.tail() for r in survivors)

            runs = await select_rows(engine, RunRow)
            claims = await select_rows(engine, SlotClaimRow)
            events = await select_rows(engine, EventRow)
        finally:
            await kill_all(replicas)
            await engine.dispose()

    # The killed claim: taken over by a survivor, run once, within its slot.
    assert any(r.owns(taken.claimed_by) for r in survivors), taken.claimed_by
    taken_runs = [r for r in runs if (r.provider, r.slot) == (claim.provider, claim.slot)]
    assert len(taken_runs) == 1 and taken_runs[0].started_at < slot_end, taken_runs

    # Every (provider, slot) ran at most once, and a run exists for every finished claim.
    per_slot = Counter((r.provider, r.slot) for r in runs)
    assert max(per_slot.values()) == 1, [k for k, n in per_slot.items() if n > 1]
    assert set(per_slot) == {(c.provider, c.slot) for c in claims if c.done}
    # Claims never finished are the victim's, in flight when it died (2 s slots are not
    # taken over: their lease outlasts the interval, and the next slot is already due).
    unfinished = [c for c in claims if not c.done]
    assert all(victim.owns(c.claimed_by) and c.claimed_at <= killed_at for c in unfinished), \
        unfinished

    # While all three were up, no 2 s slot was missed after the first interval.
    checked_until = min(watch_from, killed_at - timedelta(seconds=1))
    for name in FAST:
        provider = config.provider(name)
        assert provider is not None
        last = slot_for(provider, checked_until)
        slots = {r.slot for r in runs if r.provider == name and r.slot is not None
                 and r.slot <= last}
        first = min(slots)
        assert first <= slot_for(provider, ready_at) + 1, (name, first)
        assert slots == set(range(first, last + 1)), \
            (name, sorted(set(range(first, last + 1)) - slots))

    # Claims spread over the three replicas.
    by_replica = Counter(next(r.name for r in replicas if r.owns(c.claimed_by))
                         for c in claims if c.claimed_at < killed_at)
    print(f"ready in {ready_took:.1f}s; killed {victim.name} {kill_delay * 1000:.0f} ms after "
          f"its claim of {claim.provider}/{claim.slot}; taken over {takeover_after:.1f}s after "
          f"the claim; survivors stopped in {stop_took:.1f}s; {len(runs)} runs, "
          f"{len(claims)} claims ({dict(by_replica)}), {len(unfinished)} unfinished, "
          f"{len(receiver.received)} webhooks")
    # Racing for every slot, each wins its share (at least a tenth: a replica that
    # never wins is not taking part).
    assert len(by_replica) == 3 and \
        min(by_replica.values()) >= sum(by_replica.values()) / 10, by_replica

    # One probe.failed and one probe.recovered per cycle, each delivered, signed, under
    # its event's id (a re-send after a lost lease repeats the same webhook-id).
    flaky = Counter(e.type for e in events if e.provider == "flaky"
                    and e.type in ("probe.failed", "probe.recovered"))
    assert flaky == {"probe.failed": CYCLES, "probe.recovered": CYCLES}, flaky
    verifier = Webhook(SECRET)
    for request in receiver.received:
        payload = verifier.verify(request.body, request.headers)
        assert request.headers["webhook-id"] == payload["data"]["event_id"]
    seen = _events_received(receiver)
    assert {t: len(ids) for t, ids in seen.items()} == \
        {"probe.failed": CYCLES, "probe.recovered": CYCLES}, seen
    assert set().union(*seen.values()) == {e.id for e in events
                                           if e.provider == "flaky" and e.type in seen}

    for replica in survivors:
        assert "Traceback" not in replica.log.read_text(), replica.tail()
