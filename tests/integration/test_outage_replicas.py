"""Three `monitor serve` processes lose their PostgreSQL for 15 s: quiet, up, nothing lost.

The cluster is the test's own (tests/pgcluster.py: initdb and pg_ctl on a spare
port in a temporary directory), stopped with `-m immediate` as a crash or a
network cut would. Before the stop, one provider fails and its `probe.failed`
is in flight: the receiver answers 503 (Retry-After: 1), so the delivery is
pending in the outbox; and a slow provider's slot has just been claimed, so its
probe finishes while the database is away and its result is held in memory.
During the outage every replica stays up and answers `/readyz` 503, and logs a
handful of lines, not tracebacks. The failing provider recovers meanwhile. After
the restart every replica is ready again within a bound, the held result is
recorded under its claim, and the receiver (answering 200 again) gets
`probe.failed` and `probe.recovered` once each, signed, under their event ids.
SIGTERM stops every replica with exit 0.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from sqlmodel import col
from standardwebhooks import Webhook

from monitor.service.partition import HEARTBEAT
from monitor.store.db import make_engine
from monitor.store.tables import DeliveryRow, EventRow, RunRow, SlotClaimRow
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
from tests.pgcluster import Cluster
from tests.receivers import Receiver, Reply, running
from tests.unit.scripted_smtp import Drip, ScriptedServer
from tests.waiting import eventually, until

SLOW = [f"slow{i}" for i in range(4)]  # 2 s; NOOP answers over ~1.1 s: always mid-probe
STEADY = ["steady0", "steady1"]  # 1 s
OUTAGE = 15.0  # seconds the cluster is down
READY_AGAIN_WITHIN = 10.0  # seconds from the restart to /readyz 200 on every replica
# Lines a replica may write to its log between the stop and the restart. Measured: 1 to 3
# (database_down, and the "probe finished" of the probes in flight at the stop).
OUTAGE_LINES_AT_MOST = 30
OK_BANNER, DOWN_BANNER = "220 flaky.test ESMTP ready", "421 4.3.2 Service shutting down"
UNAVAILABLE = Reply(status=503, headers={"Retry-After": "1"}, body="busy")
ACTION = re.compile(r'"action": "(database_[a-z_]+)"')


def _config(steady: int, slow: int, flaky: int, receiver: str) -> dict[str, object]:
    providers = [connect_provider(name, steady, "1s", "1s") for name in STEADY]
    providers += [connect_provider(name, slow, "2s", "3s") for name in SLOW]
    providers.append({**connect_provider("flaky", flaky, "1s", "1s"),
                      "thresholds": {"failure": 1, "recovery": 1}})
    return {"providers": providers, **flaky_webhook(receiver)}


def _event_type(body: bytes) -> str:
    return str(json.loads(body)["type"])


def _lines(log: Path, start: int) -> list[str]:
    """The log's lines from byte `start` on."""
    return log.read_bytes()[start:].decode(errors="replace").splitlines()


async def _metric(client: httpx.AsyncClient, replica: Replica, name: str) -> float:
    """A metric's value on one replica, summed over its labels (0 without a sample: a
    labelled counter has none until it counts)."""
    text = (await client.get(f"{replica.url}/metrics")).text
    assert "monitor_results_held " in text, text[:500]  # the replica's own metrics
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(f"{name} ") or line.startswith(f"{name}{{"))


async def test_three_replicas_ride_out_a_database_outage(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(Cluster().init)
    steady_smtp, flaky_smtp = ScriptedServer(), ScriptedServer(banner=OK_BANNER)
    slow_smtp = ScriptedServer(replies={"NOOP": Drip("250 2.0.0 OK", every=0.08)})
    replicas: list[Replica] = []
    try:
        # The pg_ctl calls block for up to a second or two: in a thread, so the SMTP
        # servers and the receiver in this loop keep answering meanwhile.
        await asyncio.to_thread(cluster.start)
        async with steady_smtp, slow_smtp, flaky_smtp, running(Receiver()) as receiver, \
                httpx.AsyncClient(timeout=2) as client:
            raw = _config(steady_smtp.port, slow_smtp.port, flaky_smtp.port, receiver.url)
            config_file = tmp_path / "monitor.yaml"
            config_file.write_text(yaml.safe_dump(raw))
            engine = make_engine(cluster.url)
            try:
                started = time.monotonic()
                replicas = await start_replicas(3, config_file, cluster.url, tmp_path)
                await wait_ready(replicas, within=45)  # 17-29 s with three of these at once
                ready_took = time.monotonic() - started
                # Steady state first: every replica has beaten since all three were up, so
                # they share the providers out (monitor.service.partition) as they will.
                ready_at = time.monotonic()
                await until(lambda: time.monotonic() - ready_at >= HEARTBEAT.total_seconds() + 1,
                            "a heartbeat with all three up", within=HEARTBEAT.total_seconds() + 2)

                # Flaky fails while the receiver is busy: its probe.failed is recorded and
                # tried (503), so it is pending in the outbox when the database goes.
                receiver.script = [UNAVAILABLE]
                flaky_smtp.banner = DOWN_BANNER
                await until(lambda: any(_event_type(r.body) == "probe.failed"
                                        for r in receiver.received),
                            "a first (refused) attempt to deliver probe.failed", within=15)
                [failed] = await select_rows(engine, EventRow, col(EventRow.provider) == "flaky",
                                       col(EventRow.type) == "probe.failed")

                # Stop right after a slow slot is claimed: its probe is in flight.
                watch_from = datetime.now(UTC)

                async def fresh_claim() -> SlotClaimRow | None:
                    rows = await select_rows(engine, SlotClaimRow,
                                             col(SlotClaimRow.provider).in_(SLOW),
                                             col(SlotClaimRow.claimed_at) >= watch_from,
                                             col(SlotClaimRow.done).is_(False))
                    return rows[0] if rows else None

                claim = await eventually(fresh_claim, "a fresh claim of a slow slot", within=10,
                                         every=0.01)
                open_claims = await select_rows(engine, SlotClaimRow,
                                                col(SlotClaimRow.done).is_(False))
                offsets = [r.log.stat().st_size for r in replicas]
                stop_started = time.monotonic()
                await asyncio.to_thread(cluster.stop)
                stopped_at = time.monotonic()
                flaky_smtp.banner = OK_BANNER  # recovers while the database is away

                # The outage: everyone up, every /readyz 503, the in-flight result held.
                held_during: Counter[str] = Counter()
                polls = 0
                while time.monotonic() - stopped_at < OUTAGE:
                    for replica in replicas:
                        assert replica.proc is not None and replica.proc.returncode is None, \
                            f"{replica.name} exited during the outage\n{replica.tail()}"
                        ready = await client.get(f"{replica.url}/readyz")
                        assert ready.status_code == 503, (replica.name, ready.text)
                        assert "database" in ready.text, ready.text
                        held = await _metric(client, replica, "monitor_results_held")
                        held_during[replica.name] = max(held_during[replica.name], int(held))
                    polls += 1
                    await asyncio.sleep(0.5)
                outage_lines = [_lines(r.log, offset) for r, offset in zip(replicas, offsets,
                                                                         strict=True)]
                receiver.script = [Reply()]
                answered_200_from = len(receiver.received)
                restart_started = time.monotonic()
                await asyncio.to_thread(cluster.start)
                outage_took = time.monotonic() - stop_started
                await wait_ready(replicas, within=READY_AGAIN_WITHIN)
                ready_again = time.monotonic() - restart_started

                # After: the held result recorded, the events delivered.
                async def held_none() -> bool:
                    return all([await _metric(client, r, "monitor_results_held") == 0
                                for r in replicas])
                await eventually(held_none, "monitor_results_held back to 0", within=10)

                def delivered(kind: str) -> bool:
                    return any(_event_type(r.body) == kind
                               for r in receiver.received[answered_200_from:])
                await until(lambda: delivered("probe.failed") and delivered("probe.recovered"),
                            "probe.failed and probe.recovered delivered", within=15)

                async def drained() -> bool:
                    rows = await select_rows(engine, DeliveryRow)
                    return all(d.status == "delivered" for d in rows)
                await eventually(drained, "the outbox to drain", within=10)
                recovered_after = time.monotonic() - restart_started
                skipped = {r.name: await _metric(client, r, "monitor_slots_skipped_total")
                           for r in replicas}

                stop_began = time.monotonic()
                codes = await asyncio.gather(*(r.terminate(within=30) for r in replicas))
                stop_took = time.monotonic() - stop_began
                assert codes == [0, 0, 0], "\n".join(r.tail() for r in replicas)

                claims = {(c.provider, c.slot): c for c in await select_rows(engine, SlotClaimRow)}
                runs = await select_rows(engine, RunRow)
                events = await select_rows(engine, EventRow, col(EventRow.provider) == "flaky",
                                     col(EventRow.type).in_(["probe.failed", "probe.recovered"]))
            finally:
                await kill_all(replicas)
                await engine.dispose()
    finally:
        await asyncio.to_thread(cluster.remove)

    logs = {r.name: r.log.read_text(errors="replace").splitlines() for r in replicas}
    actions = {name: Counter(m.group(1) for line in lines if (m := ACTION.search(line)))
               for name, lines in logs.items()}
    print(f"ready in {ready_took:.1f}s; outage {outage_took:.1f}s ({polls} polls of every "
          f"replica, all 503); ready again {ready_again:.1f}s after the restart; events "
          f"delivered {recovered_after:.1f}s after it; stopped in {stop_took:.1f}s; "
          f"held during the outage {dict(held_during)}; slots skipped {skipped}; "
          f"lines during the outage "
          f"{[len(lines) for lines in outage_lines]}; outage log actions "
          f"{ {n: dict(a) for n, a in actions.items()} }; {len(receiver.received)} webhook "
          f"requests, the first {answered_200_from} answered 503")

    # The log: one line when the database went, one when it came back, nothing between
    # (a still-down line comes once a minute), no traceback, and few lines in all.
    for replica in replicas:
        assert actions[replica.name] == {"database_down": 1, "database_back": 1}, \
            (replica.name, actions[replica.name])
        noisy = [line for line in logs[replica.name]
                 if "Traceback" in line or "Job raised an exception" in line
                 or '"level": "ERROR"' in line or '"level": "CRITICAL"' in line]
        assert noisy == [], (replica.name, noisy[:5])
        # The back line says how long and what was lost meanwhile; so does the metric.
        [back] = [json.loads(line) for line in logs[replica.name]
                  if '"action": "database_back"' in line]
        assert OUTAGE - 1 <= back["down_seconds"] <= OUTAGE + READY_AGAIN_WITHIN, back
        assert skipped[replica.name] == back["failed"].get("slot", 0), (skipped, back)
    for replica, lines in zip(replicas, outage_lines, strict=True):
        assert len(lines) <= OUTAGE_LINES_AT_MOST, (replica.name, len(lines), lines[:40])
        assert any('"action": "database_down"' in line for line in lines), (replica.name, lines)
        assert all(line.startswith("{") for line in lines), (replica.name, lines)

    # The slot claimed just before the stop: its result was held, then recorded under
    # its claim; so was every other claim open at the stop.
    assert sum(held_during.values()) >= 1, held_during
    # Slots due while the database was away were skipped and counted (a replica whose
    # share of the seven providers is empty has none to skip).
    assert sum(skipped.values()) >= 5 * (OUTAGE - 2), skipped
    for open_claim in open_claims:
        key = (open_claim.provider, open_claim.slot)
        assert claims[key].done, (key, claims[key])
        assert [(r.provider, r.slot) for r in runs].count(key) == 1, key
    assert (claim.provider, claim.slot) in {(c.provider, c.slot) for c in open_claims}
    per_slot = Counter((r.provider, r.slot) for r in runs)
    assert max(per_slot.values()) == 1, [k for k, n in per_slot.items() if n > 1]

    # No event lost: one probe.failed and one probe.recovered, the failed one tried before
    # the outage, each answered 200 exactly once afterwards, signed, webhook-id = event id.
    assert sorted(e.type for e in events) == ["probe.failed", "probe.recovered"], \
        [(e.type, e.timestamp) for e in events]
    verifier = Webhook(SECRET)
    payloads = [verifier.verify(r.body, r.headers) for r in receiver.received]
    for request, payload in zip(receiver.received, payloads, strict=True):
        assert request.headers["webhook-id"] == payload["data"]["event_id"]
    refused = Counter(p["type"] for p in payloads[:answered_200_from])
    assert refused["probe.failed"] >= 1 and set(refused) == {"probe.failed"}, refused
    accepted = Counter(p["data"]["event_id"] for p in payloads[answered_200_from:])
    assert accepted == {e.id: 1 for e in events}, (accepted, [(e.id, e.type) for e in events])
    assert {p["data"]["event_id"] for p in payloads[:answered_200_from]} == {failed.id}
