"""`python -m bench record`: the CPU it costs to record one probe run, in process.

A real `send` probe runs once against the benchmark server (STARTTLS, AUTH, one
message: every step a send records); then its result is recorded N times, as N
runs of 420 providers (5,000 a minute at 84 a second), through the service's own
`record()` — run, state, rollup, events, pending tokens — into a fresh database.
`callers` records are in flight at once: 1 means each commits alone (the writer
has nothing to group it with); more lets the writer commit them in groups, as it
does when serve's probes finish close together. CPU is this process's (the
writer's thread included) over the N records.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet

from bench.alerts import _database
from bench.clients import provider_fields
from bench.report import aligned
from bench.server import ServerInfo, ServerProcess
from monitor.config import Config, ProviderConfig
from monitor.ids import new_id
from monitor.probe import ProbeResult, run_probe
from monitor.service.context import AppContext
from monitor.service.probing import record
from monitor.store.db import migrate

PROVIDERS = 420


@dataclass(frozen=True)
class Row:
    database: str
    callers: int
    cpu_ms: float  # per recorded run
    per_second: float
    per_group: float


def _config(server: ServerInfo) -> Config:
    return Config(providers=tuple(
        ProviderConfig.model_validate(provider_fields(server, f"send-{n:03d}", "send"))
        for n in range(PROVIDERS)))


async def _measure(kind: str, config: Config, sample: ProbeResult, runs: int,
                   callers: int) -> Row:
    async with _database(kind) as url:
        ctx = AppContext.create(config, url)
        try:
            await migrate(ctx.engine)
            start = datetime.now(UTC)
            results = [sample.model_copy(update={
                "run_id": new_id("r"), "provider": config.providers[n % PROVIDERS].name,
                "started_at": start + timedelta(seconds=n)}) for n in range(runs)]
            queue = iter(results)

            async def caller() -> None:
                for result in queue:
                    provider = config.provider(result.provider)
                    assert provider is not None
                    await record(ctx, provider, result)

            await record(ctx, config.providers[0], sample)  # first use: thread, pool, caches
            groups = ctx.writer.groups
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(callers)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            return Row(kind, callers, cpu / runs * 1000, runs / wall,
                       runs / (ctx.writer.groups - groups))
        finally:
            await ctx.close()


async def _run(args: argparse.Namespace, server: ServerInfo) -> list[Row]:
    config = _config(server)
    sample = await run_probe(config.providers[0], config)
    if not sample.ok:
        raise RuntimeError(f"the sample send probe failed: {sample.failure}")
    rows = []
    for kind in args.databases.split(","):
        for callers in (int(c) for c in args.callers.split(",")):
            rows.append(await _measure(kind, config, sample, args.runs, callers))
            print(f"  {kind}, {callers} callers: done", file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--callers", default="1,8", help="records in flight at once")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    os.environ.setdefault("MONITOR_SECRET_KEY", Fernet.generate_key().decode())
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp, \
            ServerProcess(Path(tmp)) as server:
        rows = asyncio.run(_run(args, server))
    print(f"recording a send run through record(), {args.runs} runs of {PROVIDERS} providers; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(aligned([["database", "callers", "CPU ms/run", "runs/s", "runs per commit"],
                   *([r.database, str(r.callers), f"{r.cpu_ms:.2f}", f"{r.per_second:.0f}",
                      f"{r.per_group:.1f}"] for r in rows)]))
    return 0
