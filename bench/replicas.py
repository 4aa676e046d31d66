"""`python -m bench serve-load --replicas N`: N `monitor serve` processes on one PostgreSQL.

Every phase gets a fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust
auth, user postgres; `MONITOR_BENCH_PG=user@host:port` for another), migrated before
the replicas start and dropped afterwards. The replicas share one Fernet key
(MONITOR_SECRET_KEY), one config (N providers against the aiosmtpd sandbox, its own
process), and each has its own loopback port, data directory, log and
HOSTNAME=replica-i (claims are recorded as `replica-i-<random>`).

Phases, in the order `--phases` gives them, each measured the same way:

* `partitioned` — the code as built: heartbeats in the `replica` table, each provider
  run by its rendezvous owner among the live replicas (monitor/service/partition.py).
* `race` — the design before it, emulated without changing the code: a trigger on
  the `replica` table swallows every heartbeat, so each replica reads no other live
  replica, owns every provider, fires every slot and races the others for its claim
  (what every replica did before partitioning; it still runs its cheap heartbeat job).
* `single` — one replica with every provider: the whole job in one process, the
  yardstick for "each of N replicas does 1/N of the work".
* `bystander` (on request) — one replica beside GHOSTS fake live replicas (heartbeat
  rows dated a day ahead, so they never age out): it owns about 1/(GHOSTS+1) of the
  providers but still fires every provider's timer. Its CPU is the floor each replica
  pays for the whole provider list whatever its share (a little above it: each fire
  hashes GHOSTS+1 weights where a 3-replica deployment hashes 3, ~75 us against ~4 us);
  slots owned by ghosts are never run, so its slot counts are not a result.

After the warm-up, each replica's /metrics is read (monitor_slot_claims_lost), then
CPU (utime+stime from /proc/<pid>/stat) and RSS (VmRSS) of every replica and the
sandbox are sampled for the measured window, then /metrics is read again. Rendering
/metrics is thus outside the CPU window. PostgreSQL is measured as a whole server (its
processes' CPU, reaped backends included: every database on it, so other work on the
machine's PostgreSQL shows there too) and, for this database, by pg_stat_database's
commits, rollbacks and sessions (connections opened). Afterwards, from `slot_claim`:

* slots due: every (provider, slot) whose boundary (slot x interval + the provider's
  phase, monitor.service.probing.slot_offset) falls in the measured window;
* missed = due slots never claimed; lateness = claimed_at (the fire time, taken just
  before the claim) - slot boundary;
* per replica, over its own span (from the start of its first /metrics request to the
  start of its second): claims won = its rows among the slots due in that span, claims
  lost = its counter's increase, claim attempts per slot = (won + lost) / slots due.
  The span runs from request to request, not answer to answer: serve renders /metrics
  on its event loop (seconds, at thousands of providers), so a slot due while it renders
  is tried only after the answer — after the first read (counted) or after the second
  (not): as if each read had happened when its request went out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs, no py.typed

from bench.report import aligned
from bench.serve_load import (
    CLK_TCK,
    HELO,
    MB,
    REPO,
    Usage,
    alive,
    child,
    free_port,
    log_summary,
    sample,
    sandbox_pid,
)
from bench.server import ServerInfo, ServerProcess

PG = os.environ.get("MONITOR_BENCH_PG", "postgres@127.0.0.1:5432")
PHASES = ("partitioned", "race", "single", "bystander")
GHOSTS = 99
STARTUP_DEADLINE_S = 180.0  # N processes loading thousands of providers on two cores
MIN_WARMUP_S = 20.0  # heartbeats every 5 s: every replica has seen every other by then
SCRAPE_TIMEOUT_S = 120.0
# serve gives in-flight work SHUTDOWN_GRACE (20 s) on SIGTERM, then stops: room for both.
STOP_TIMEOUT_S = 45.0

# The race phase: every heartbeat is dropped, so `store.replicas.alive` finds nobody and
# each replica owns every provider (partition.mine with only itself live).
ALONE = """
CREATE FUNCTION bench_drop_heartbeat() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER bench_every_replica_alone BEFORE INSERT OR UPDATE ON replica
    FOR EACH ROW EXECUTE FUNCTION bench_drop_heartbeat();
"""


# -- the database ----------------------------------------------------------------------


def _admin_execute(sql: str) -> None:
    async def go() -> None:
        admin = await asyncpg.connect(f"postgresql://{PG}/postgres")
        try:
            await admin.execute(sql)
        finally:
            await admin.close()
    asyncio.run(go())


@contextlib.contextmanager
def fresh_database(tag: str) -> Iterator[str]:
    """A new database's name; dropped (connections and all) when the block ends."""
    name = f"dm_bench_{secrets.token_hex(4)}_{tag}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(name: str, secret_key: str, phase: str) -> None:
    """Migrate to head before any replica starts; for `race`, install the trigger; for
    `bystander`, add the ghost replicas."""
    from monitor.store.crypto import Cipher
    from monitor.store.db import make_engine, migrate

    async def go() -> None:
        engine = make_engine(f"postgresql+asyncpg://{PG}/{name}", Cipher([secret_key]))
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
        connection = await asyncpg.connect(f"postgresql://{PG}/{name}")
        try:
            if phase == "race":
                await connection.execute(ALONE)
            if phase == "bystander":
                await connection.executemany(
                    "INSERT INTO replica (name, last_seen) VALUES "
                    "($1, now() + interval '1 day')",
                    [(f"ghost-{n:02d}-000000",) for n in range(GHOSTS)])
        finally:
            await connection.close()
    asyncio.run(go())


@dataclass(frozen=True)
class DatabaseStats:
    """pg_stat_database counters of one database (PostgreSQL flushes them within ~1 s)."""

    sessions: int  # connections opened
    commits: int
    rollbacks: int  # a lost claim, and every read-only session (pool reset on return)

    def __sub__(self, other: DatabaseStats) -> DatabaseStats:
        return DatabaseStats(self.sessions - other.sessions, self.commits - other.commits,
                             self.rollbacks - other.rollbacks)


def database_stats(name: str) -> tuple[DatabaseStats, int, int]:
    """Database `name`'s counters, its backends now, and the postmaster's pid (the parent
    of this query's backend); asked from `postgres`, so this connection is not counted."""
    async def go() -> tuple[DatabaseStats, int, int]:
        connection = await asyncpg.connect(f"postgresql://{PG}/postgres")
        try:
            row = await connection.fetchrow(
                "SELECT sessions, xact_commit, xact_rollback, pg_backend_pid() AS me, "
                "(SELECT COUNT(*) FROM pg_stat_activity a WHERE a.datname = d.datname) "
                "AS backends FROM pg_stat_database d WHERE datname = $1", name)
            postmaster = _parent(int(row["me"]))  # while that backend still exists
        finally:
            await connection.close()
        stats = DatabaseStats(int(row["sessions"]), int(row["xact_commit"]),
                              int(row["xact_rollback"]))
        return stats, int(row["backends"]), postmaster
    return asyncio.run(go())


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the whole PostgreSQL server: the postmaster, its live children
    (backends, walwriter, ...) and, through its cutime/cstime, every child it has reaped
    — so backends that exited mid-window (a pool's overflow connections) still count."""
    with open(f"/proc/{postmaster}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK  # u/s time, children's
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # exited while we looked: its time is in the postmaster's cutime
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


@dataclass(frozen=True)
class Claim:
    provider: str
    slot: int
    replica: str  # HOSTNAME, without the random suffix
    claimed_at: float  # epoch seconds
    done: bool


def claims_since(name: str, since: float) -> tuple[list[Claim], int]:
    """slot_claim rows claimed since `since`; and (provider, slot)s with two runs recorded."""
    async def go() -> tuple[list[Claim], int]:
        connection = await asyncpg.connect(f"postgresql://{PG}/{name}")
        try:
            rows = await connection.fetch(
                "SELECT provider, slot, claimed_by, claimed_at, done FROM slot_claim "
                "WHERE claimed_at >= to_timestamp($1)", since)
            twice = await connection.fetchval(
                "SELECT COUNT(*) FROM (SELECT 1 FROM run WHERE slot IS NOT NULL "
                "GROUP BY provider, slot HAVING COUNT(*) > 1) AS doubled")
        finally:
            await connection.close()
        claimed_at: list[datetime] = [row["claimed_at"] for row in rows]
        return ([Claim(row["provider"], int(row["slot"]), row["claimed_by"].rpartition("-")[0],
                       at.timestamp(), bool(row["done"]))
                 for row, at in zip(rows, claimed_at, strict=True)], int(twice))
    return asyncio.run(go())


# -- config ----------------------------------------------------------------------------


def write_config(server: ServerInfo, mode: str, providers: int, path: Path,
                 interval: float) -> None:
    """Providers with only the keys that differ from the defaults, one flow mapping each.

    The config loader refuses more than 50,000 YAML nodes (monitor/config/loader.py);
    serve_load's providers (nine keys, 19 nodes each) stop at about 2,600. Left out:
    `mode` and `interval` when they are the defaults (connect, 60 s), `helo` (the
    settings' is the same), `timeout` (the default 30 s, not the bench's 10 s: it only
    sizes the slot lease here) and, in connect mode, which never starts TLS, `tls` and
    `ca_file`; `tls` when it is starttls. A connect provider is then 7 nodes: 5,000 fit,
    about 7,000 would.
    """
    import yaml

    from bench.clients import provider_fields
    from monitor.config import ProviderConfig

    defaults = {"mode": ProviderConfig.model_fields["mode"].default.value,
                "tls": ProviderConfig.model_fields["tls"].default.value,
                "interval": f"{ProviderConfig.model_fields['interval'].default.seconds}s"}
    entries = []
    for index in range(providers):
        fields = provider_fields(server, f"{mode}-{index:04d}", mode)
        fields["interval"] = f"{interval:g}s"
        for key in ("helo", "timeout", *(("tls", "ca_file") if mode == "connect" else ())):
            fields.pop(key)
        entries.append({k: v for k, v in fields.items() if defaults.get(k) != v})
    path.write_text(yaml.safe_dump({"settings": {"helo": HELO}, "providers": entries},
                                   default_flow_style=None, sort_keys=False),
                    encoding="utf-8")


# -- slots -----------------------------------------------------------------------------


def provider_offsets(config: Path) -> dict[str, float]:
    """Each provider's phase within its interval, as the scheduler computes it."""
    from monitor.config import load_config
    from monitor.service.probing import slot_offset

    return {p.name: slot_offset(p) for p in load_config(config).providers}


def due(offsets: Mapping[str, float], interval: float, start: float,
        end: float) -> dict[tuple[str, int], float]:
    """(provider, slot) -> boundary, for every boundary in [start, end)."""
    slots = {}
    for name, offset in offsets.items():
        k = math.ceil((start - offset) / interval)
        while (boundary := k * interval + offset) < end:
            slots[(name, k)] = boundary
            k += 1
    return slots


# -- replicas --------------------------------------------------------------------------


@dataclass(frozen=True)
class Replica:
    name: str
    port: int
    log: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Scrape:
    lost: float  # monitor_slot_claims_lost_total
    skipped: float  # monitor_slots_skipped_total, all providers: the database was "away"
    sent: float  # epoch seconds when the request went out
    took: float
    size: int


def scrape(replica: Replica, token: str) -> Scrape:
    request = urllib.request.Request(f"http://127.0.0.1:{replica.port}/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
    sent, started = time.time(), time.monotonic()
    with urllib.request.urlopen(request, timeout=SCRAPE_TIMEOUT_S) as response:
        body: bytes = response.read()
    took = time.monotonic() - started
    lost, skipped = None, 0.0
    for line in body.splitlines():
        if line.startswith(b"monitor_slot_claims_lost_total "):
            lost = float(line.split()[1])
        elif line.startswith(b"monitor_slots_skipped_total{"):
            skipped += float(line.rpartition(b" ")[2])
    if lost is None:
        raise RuntimeError(f"{replica.name}: no monitor_slot_claims_lost_total in /metrics")
    return Scrape(lost, skipped, sent, took, len(body))


def stop_all(processes: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """One SIGTERM each, all at once (each drains on its own), SIGKILL for any still up
    after STOP_TIMEOUT_S; the exit codes (negative: killed by that signal)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [process.returncode for process in processes]


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all CPUs (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    total = sum(fields)  # user nice system idle iowait irq softirq steal
    return (total - fields[3] - fields[4]) / CLK_TCK, total / CLK_TCK


def wait_ready(processes: Mapping[str, subprocess.Popen[bytes]],
               replicas: Sequence[Replica]) -> None:
    """Every replica answers /readyz 200 (database reachable, scheduler running)."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    waiting = list(replicas)
    while waiting:
        for replica in list(waiting):
            alive(processes[replica.name], f"monitor serve {replica.name}", replica.log)()
            try:
                url = f"http://127.0.0.1:{replica.port}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        waiting.remove(replica)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet, or 503 while starting
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {STARTUP_DEADLINE_S:g} s: "
                               f"{', '.join(r.name for r in waiting)}")
        time.sleep(0.2)


@dataclass(frozen=True)
class ReplicaFigures:
    name: str
    usage: Usage
    won: int
    lost: int
    skipped: int  # slots it did not try: its database calls failed (counted as an outage)
    slots: int  # due in this replica's counting span
    span_s: float
    scrape_s: float  # the slower of its two /metrics reads
    scrape_bytes: int
    exit_code: int
    notes: tuple[str, ...]

    @property
    def attempts(self) -> int:
        return self.won + self.lost


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    replicas: tuple[ReplicaFigures, ...]
    seconds: float
    sandbox: Usage
    postgres_cpu_s: float  # the whole server (every database on it) in the window
    postgres_backends: int  # this database's, at the end of the window
    database: DatabaseStats  # this database's counters over the window
    slots: int
    claimed: int
    unrecorded: int
    recorded_twice: int
    lateness: tuple[float, ...]  # sorted, seconds
    claimants: Mapping[str, int]  # claims per replica over the whole window
    load: tuple[float, float]  # the machine's 1-minute load average, window start and end
    machine_cpu_s: float  # busy CPU seconds of the whole machine (all CPUs) in the window
    ours_cpu_s: float  # of which the replicas, the sandbox and the database's backends

    @property
    def others_cpu_s(self) -> float:
        """CPU the rest of the machine used meanwhile (other work, PostgreSQL's own
        processes, this driver): the noise behind every figure here."""
        return max(0.0, self.machine_cpu_s - self.ours_cpu_s)

    @property
    def missed(self) -> int:
        return self.slots - self.claimed

    def per_minute(self, cpu_s: float) -> float:
        return 60 * cpu_s / self.seconds

    @property
    def attempts_per_slot(self) -> float:
        return sum(r.attempts / r.slots for r in self.replicas if r.slots)

    @property
    def transactions_per_slot(self) -> float:
        return (self.database.commits + self.database.rollbacks) / max(self.slots, 1)

    @property
    def mean_cpu(self) -> float:
        return statistics.fmean(self.per_minute(r.usage.cpu_s) for r in self.replicas)

    @property
    def total_cpu(self) -> float:
        return sum(self.per_minute(r.usage.cpu_s) for r in self.replicas)

    @property
    def mean_rss(self) -> float:
        return statistics.fmean(r.usage.peak_rss for r in self.replicas) / MB


@dataclass(frozen=True)
class Plan:
    server: ServerInfo
    server_pid: int
    config: Path
    offsets: Mapping[str, float]
    interval: float
    warmup: float
    seconds: float
    secret_key: str
    token: str
    workdir: Path


def run_phase(plan: Plan, phase: str, count: int) -> PhaseResult:
    directory = plan.workdir / f"phase-{phase}"
    directory.mkdir()
    with fresh_database(phase) as name:
        prepare(name, plan.secret_key, phase)
        replicas = [_replica(plan, name, directory, index) for index in range(1, count + 1)]
        monitor = Path(sys.executable).with_name("monitor")  # the process measured: serve
        with contextlib.ExitStack() as stack:
            processes = {r.name: stack.enter_context(child([str(monitor), "serve"], r.log,
                                                           env=r.env)) for r in replicas}
            wait_ready(processes, replicas)
            checks = [alive(processes[r.name], f"monitor serve {r.name}", r.log)
                      for r in replicas]

            def check() -> None:
                for each in checks:
                    each()

            _progress(f"{phase}: {count} ready; {plan.warmup:g} s warm-up")
            warm_until = time.monotonic() + plan.warmup
            while time.monotonic() < warm_until:
                check()
                time.sleep(min(1.0, max(0.0, warm_until - time.monotonic())))
            with ThreadPoolExecutor(len(replicas)) as pool:
                first = list(pool.map(lambda r: scrape(r, plan.token), replicas))
                start, load_before, busy_before = time.time(), os.getloadavg()[0], machine_busy()
                db_before, _, postmaster = database_stats(name)
                pg_before = server_cpu(postmaster)
                _progress(f"{phase}: measuring {plan.seconds:g} s")
                pids = {r.name: processes[r.name].pid for r in replicas}
                usage = sample({**pids, "sandbox": plan.server_pid}, plan.seconds, check)
                pg_after = server_cpu(postmaster)
                db_after, backends, _ = database_stats(name)
                end, load_after, busy_after = time.time(), os.getloadavg()[0], machine_busy()
                second = list(pool.map(lambda r: scrape(r, plan.token), replicas))
            codes = dict(zip(processes, stop_all(list(processes.values())), strict=True))
        claims, twice = claims_since(name, start - 2 * plan.interval - 60)

    postgres_cpu = pg_after - pg_before
    slots = due(plan.offsets, plan.interval, start, end)
    by_slot = {(c.provider, c.slot): c for c in claims}
    in_window = [by_slot[key] for key in slots if key in by_slot]
    lateness = sorted(c.claimed_at - slots[(c.provider, c.slot)] for c in in_window)
    figures = []
    for replica, before, after in zip(replicas, first, second, strict=True):
        span = due(plan.offsets, plan.interval, before.sent, after.sent)
        won = sum(1 for key in span if (c := by_slot.get(key)) and c.replica == replica.name)
        figures.append(ReplicaFigures(
            replica.name, usage[replica.name], won, round(after.lost - before.lost),
            round(after.skipped - before.skipped), len(span),
            after.sent - before.sent, max(before.took, after.took), after.size,
            codes[replica.name], tuple(log_summary(replica.log))))
    claimants: dict[str, int] = {}
    for claim in in_window:
        claimants[claim.replica] = claimants.get(claim.replica, 0) + 1
    ours = sum(u.cpu_s for u in usage.values()) + postgres_cpu
    return PhaseResult(phase, tuple(figures), end - start, usage["sandbox"], postgres_cpu,
                       backends, db_after - db_before, len(slots), len(in_window),
                       sum(1 for c in in_window if not c.done), twice, tuple(lateness),
                       claimants, (load_before, load_after), busy_after[0] - busy_before[0],
                       ours)


def _replica(plan: Plan, database: str, directory: Path, index: int) -> Replica:
    name = f"replica-{index}"
    port = free_port()
    data = directory / f"data-{name}"
    data.mkdir()
    env = {**os.environ,
           "MONITOR_CONFIG": str(plan.config),
           "MONITOR_DATABASE_URL": f"postgresql+asyncpg://{PG}/{database}",
           "MONITOR_SECRET_KEY": plan.secret_key,
           "MONITOR_LISTEN": f"127.0.0.1:{port}",
           "MONITOR_API_TOKENS": f"{plan.token}:read",
           "MONITOR_DATA_DIR": str(data),
           "MONITOR_LOG_LEVEL": "INFO",
           "HOSTNAME": name,
           # As in serve_load.measure_serve: this checkout first on the path.
           "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO),
                                                       os.environ.get("PYTHONPATH"))))}
    return Replica(name, port, directory / f"{name}.log", env)


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# -- report ----------------------------------------------------------------------------


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def phase_table(result: PhaseResult) -> str:
    header = ("replica", "CPU s/min", "CPU % core", "peak RSS MB", "final RSS MB", "won",
              "lost", "attempts", "skipped", "slots", "attempts/slot", "/metrics MB, s")
    lines: list[tuple[str, ...]] = [header]
    for r in result.replicas:
        lines.append((r.name, f"{result.per_minute(r.usage.cpu_s):.2f}",
                      f"{r.usage.cpu_pct:.1f}", f"{r.usage.peak_rss / MB:.1f}",
                      f"{r.usage.final_rss / MB:.1f}", str(r.won), str(r.lost),
                      str(r.attempts), str(r.skipped), str(r.slots),
                      f"{r.attempts / r.slots:.3f}" if r.slots else "-",
                      f"{r.scrape_bytes / MB:.1f}, {r.scrape_s:.2f}"))
    lines.append(("all", f"{result.total_cpu:.2f}", "", "", "", "", "", "", "", "",
                  f"{result.attempts_per_slot:.3f}", ""))
    return aligned(lines)


def phase_summary(result: PhaseResult) -> list[str]:
    late = result.lateness
    ghosts = (f"(ghosts own ~{GHOSTS / (GHOSTS + 1):.0%} of these slots and never run them: "
              "the slot figures of this phase are not a result) "
              if result.phase == "bystander" else "")
    return [
        f"{ghosts}slots due in the window: {result.slots}; claimed {result.claimed} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result.claimants.items()))}); "
        f"missed {result.missed}; claimed but not recorded {result.unrecorded}; "
        f"(provider, slot)s with two runs recorded (whole phase): {result.recorded_twice}",
        f"scheduler lateness (claimed_at - slot boundary): p50 {_quantile(late, 0.5):.3f} s, "
        f"p99 {_quantile(late, 0.99):.3f} s, max {late[-1] if late else math.nan:.3f} s",
        f"meanwhile: sandbox {result.per_minute(result.sandbox.cpu_s):.2f} CPU s/min; "
        f"PostgreSQL server (all its processes, every database) "
        f"{result.per_minute(result.postgres_cpu_s):.2f} CPU s/min; this database: "
        f"{result.postgres_backends} backends at the end, {result.database.sessions} "
        f"connections opened, {result.database.commits} commits, "
        f"{result.database.rollbacks} rollbacks in the window",
        f"the machine: {result.per_minute(result.machine_cpu_s):.1f} CPU s/min busy of "
        f"{60 * (os.cpu_count() or 1)}, of which {result.per_minute(result.others_cpu_s):.1f} "
        f"not this bench's processes; load average {result.load[0]:.1f} at the start, "
        f"{result.load[1]:.1f} at the end",
        *(f"{r.name}: exit {r.exit_code}; log {'; '.join(r.notes)}" for r in result.replicas),
    ]


@dataclass(frozen=True)
class Comparison:
    what: str
    ours: str
    baseline: str
    ratio: str


def comparisons(results: Mapping[str, PhaseResult], count: int) -> list[Comparison]:
    ours, race, single, bystander = (results.get(p) for p in PHASES)
    rows: list[Comparison] = []
    if ours is None:
        return rows

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    rows.append(Comparison(
        "claim attempts per slot, all replicas", f"{ours.attempts_per_slot:.3f}",
        f"{count} (computed: {count} replicas x slots, the old design)",
        ratio(ours.attempts_per_slot, count)))
    if race is not None:
        rows.append(Comparison(
            "claim attempts per slot, all replicas", f"{ours.attempts_per_slot:.3f}",
            f"{race.attempts_per_slot:.3f} (race, emulated, measured)",
            ratio(ours.attempts_per_slot, race.attempts_per_slot)))
        rows.append(Comparison(
            "CPU per replica, s per minute (mean)", _spread(ours),
            f"{_spread(race)} (race)", ratio(ours.mean_cpu, race.mean_cpu)))
        rows.append(Comparison(
            "CPU of all replicas, s per minute", f"{ours.total_cpu:.2f}",
            f"{race.total_cpu:.2f} (race)", ratio(ours.total_cpu, race.total_cpu)))
        rows.append(Comparison(
            "PostgreSQL server CPU, s per minute", f"{ours.per_minute(ours.postgres_cpu_s):.2f}",
            f"{race.per_minute(race.postgres_cpu_s):.2f} (race)",
            ratio(ours.postgres_cpu_s / ours.seconds, race.postgres_cpu_s / race.seconds)))
        rows.append(Comparison(
            "database transactions per slot, every job's (commits + rollbacks)",
            f"{ours.transactions_per_slot:.2f}", f"{race.transactions_per_slot:.2f} (race)",
            ratio(ours.transactions_per_slot, race.transactions_per_slot)))
        rows.append(Comparison(
            "connections opened in the window, all replicas", str(ours.database.sessions),
            f"{race.database.sessions} (race)", "-"))
    if single is not None:
        rows.append(Comparison(
            "CPU per replica, s per minute (mean)", _spread(ours),
            f"{single.mean_cpu:.2f} (one replica, every provider; target ratio ~{1 / count:.2f})",
            ratio(ours.mean_cpu, single.mean_cpu)))
        rows.append(Comparison(
            "CPU of all replicas, s per minute", f"{ours.total_cpu:.2f}",
            f"{single.total_cpu:.2f} (one replica)", ratio(ours.total_cpu, single.total_cpu)))
    if bystander is not None:
        rows.append(Comparison(
            "CPU of a replica owning ~1% but timing every provider, s per minute",
            f"{bystander.mean_cpu:.2f} (bystander)", f"{ours.mean_cpu:.2f} (partitioned, "
            "per replica)", ratio(bystander.mean_cpu, ours.mean_cpu)))
        if single is not None:
            rows.append(Comparison(
                "the same, against one replica doing every provider",
                f"{bystander.mean_cpu:.2f} (bystander)", f"{single.mean_cpu:.2f} (single)",
                ratio(bystander.mean_cpu, single.mean_cpu)))
    for other in (race, single):
        if other is not None:
            rows.append(Comparison(
                "peak RSS per replica, MB (mean)", f"{ours.mean_rss:.1f}",
                f"{other.mean_rss:.1f} ({other.phase})", ratio(ours.mean_rss, other.mean_rss)))
    for result in filter(None, (ours, race, single)):
        late = result.lateness
        rows.append(Comparison(
            f"{result.phase}: missed slots; lateness p50 / p99 / max",
            f"{result.missed} of {result.slots}; {_quantile(late, 0.5):.3f} / "
            f"{_quantile(late, 0.99):.3f} / {late[-1] if late else math.nan:.3f} s",
            "0; p99 < 1 s (issue 12 target)", "-"))
    return rows


def _spread(result: PhaseResult) -> str:
    values = [result.per_minute(r.usage.cpu_s) for r in result.replicas]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(args: argparse.Namespace, parser: argparse.ArgumentParser,
         argv: Sequence[str] | None) -> int:
    from cryptography.fernet import Fernet

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases or len(set(phases)) != len(phases):
        parser.error(f"--phases: a comma-separated list of {', '.join(PHASES)}, each once")
    mode = args.variant or "connect"
    if mode == "all":
        parser.error("--replicas measures one mode: --variant connect, tls or send")
    interval: float = args.interval
    seconds = args.duration or (interval if args.quick else 2 * interval)
    warmup = max(interval, MIN_WARMUP_S) if args.warmup is None else args.warmup
    command = " ".join(["python -m bench serve-load",
                        *(sys.argv[2:] if argv is None else argv)])
    workdir = Path(tempfile.mkdtemp(prefix="monitor-replicas-"))
    results: dict[str, PhaseResult] = {}
    try:
        with ServerProcess(workdir) as server:
            config = workdir / "monitor.yaml"
            write_config(server, mode, args.providers, config, interval)
            try:
                offsets = provider_offsets(config)  # what serve will load, refused the same
            except Exception as exc:  # ConfigError: serve would exit 2 with the same words
                print(f"error: the config is refused: {exc}"[:2000], file=sys.stderr)
                return 2
            plan = Plan(server, sandbox_pid(), config, offsets, interval,
                        warmup, seconds, Fernet.generate_key().decode(),
                        secrets.token_urlsafe(24), workdir)
            for phase in phases:
                count = 1 if phase in ("single", "bystander") else args.replicas
                _progress(f"{phase}: {count} x monitor serve, {args.providers} providers "
                          f"({mode}) every {interval:g} s")
                results[phase] = run_phase(plan, phase, count)
    except BaseException:
        if results:
            report(results, args, mode, seconds, warmup, command, partial=True)
        raise
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args, mode, seconds, warmup, command)
    return 0


def report(results: Mapping[str, PhaseResult], args: argparse.Namespace, mode: str,
           seconds: float, warmup: float, command: str, partial: bool = False) -> None:
    import platform

    print(f"monitor serve x {args.replicas} on one PostgreSQL"
          f"{' (PARTIAL: a later phase failed)' if partial else ''}: {args.providers} "
          f"providers ({mode}) every {args.interval:g} s against the aiosmtpd sandbox; "
          f"{warmup:g} s warm-up, {seconds:g} s measured; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    print(f"command: {command}")
    print(f"code: {_code_version()}")
    for result in results.values():
        print(f"\n{result.phase} ({result.seconds:.0f} s measured):")
        print(phase_table(result))
        for line in phase_summary(result):
            print(f"  {line}")
    rows = comparisons(results, args.replicas)
    if rows:
        print("\nours = partitioned (as built); ratio = ours / baseline")
        print(aligned([("what", "ours", "baseline", "ratio"),
                       *((r.what, r.ours, r.baseline, r.ratio) for r in rows)]))
    if args.markdown and rows:
        print("\n| what | ours | baseline | ratio | command |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r.what} | {r.ours} | {r.baseline} | {r.ratio} | `{command}` |")


def _code_version() -> str:
    """The commit measured, and whether monitor/ differs from it (others may be editing)."""
    git = ["git", "-C", str(REPO)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "monitor"],
                               capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return f"{REPO} (not a git checkout)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"{REPO} at {head}" + (f", monitor/ changed: {', '.join(changed)}" if changed else "")
