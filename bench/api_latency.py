"""`python -m bench api-latency`: latency of `GET /v1/providers` with 100 providers.

`monitor serve` runs as a subprocess with 100 providers (mode tls against the aiosmtpd
sandbox, bench/server.py, its own process), its own temporary SQLite database and a
free loopback port. Every provider first gets one recorded run, so each list item
carries a `last_result`: a first serve process probes them all through
`POST /v1/providers/{name}/probe` (admin token) and is stopped; the measured serve
process then starts on the same database with a 24 h interval, so no scheduled probe
lands in the measurement (the runs recorded meanwhile are counted and reported).
`--history N` adds N-1 older copies of each run to the database between the two, to
see how the list scales with a database that has been collecting for a while.

Measured with httpx (one keep-alive client, warm-up first): N requests per endpoint
and load, in rounds whose order alternates between the endpoints, so a slow spell on
the shared machine hits them alike. The baseline, measured in the same run against
the same server: `GET /healthz`, a trivial route that shows the floor of the HTTP
framework, the client and loopback. `GET /v1/providers/{name}` (one provider, same
state and last result) is measured too: it separates the per-provider cost from the
fixed one. Loads: sequential (one request in flight) and 10 concurrent clients.
Ratios against /healthz are what to read; absolute times drift from run to run.

`--profile` samples serve with py-spy during an extra sequential run of the list
and prints the functions where it spends its time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import yaml

from bench.clients import HELO, provider_fields
from bench.report import aligned
from bench.serve_load import (
    REPO,
    alive,
    child,
    cpu_seconds,
    failures,
    free_port,
    log_summary,
    run_counts,
    stop,
    wait_healthy,
)
from bench.server import ServerInfo, ServerProcess
from bench.timing import AsyncOp, time_batch

PROVIDERS = 100
REQUESTS = 500
QUICK_REQUESTS = 100
ROUNDS = 5
CONCURRENCY = 10
WARMUP_REQUESTS = 20
INTERVAL = "24h"  # no scheduled probe during the measurement
PRIME_CONCURRENCY = 10  # on-demand probes in flight while priming
PROFILE_S = 15.0
REQUEST_TIMEOUT_S = 60.0

LIST = "/v1/providers"
HEALTHZ = "/healthz"
ONE = "/v1/providers/{name}"


def _name(index: int) -> str:
    return f"tls-{index:03d}"


# -- monitor serve ---------------------------------------------------------------------


@dataclass(frozen=True)
class Serve:
    """How to start `monitor serve` on the benchmark's config and database."""

    workdir: Path
    env: dict[str, str]
    port: int
    read_token: str
    admin_token: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.workdir / "monitor.db"

    @contextlib.contextmanager
    def running(self, log_name: str) -> Iterator[subprocess.Popen[bytes]]:
        log = self.workdir / log_name
        monitor = Path(sys.executable).with_name("monitor")  # this venv's console script
        with child([str(monitor), "serve"], log, env=self.env) as process:
            wait_healthy(process, self.port, log)
            yield process


def prepare(server: ServerInfo, providers: int, workdir: Path) -> Serve:
    config = workdir / "monitor.yaml"
    entries = []
    for index in range(providers):
        fields = provider_fields(server, _name(index), "tls")
        fields["interval"] = INTERVAL
        entries.append(fields)
    config.write_text(yaml.safe_dump({"settings": {"helo": HELO}, "providers": entries}),
                      encoding="utf-8")
    read_token, admin_token = secrets.token_hex(16), secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "MONITOR_CONFIG": str(config),
           "MONITOR_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'monitor.db'}",
           "MONITOR_LISTEN": f"127.0.0.1:{port}", "MONITOR_LOG_LEVEL": "INFO",
           "MONITOR_API_TOKENS": f"{read_token}:read,{admin_token}:admin",
           "MONITOR_DATA_DIR": str(workdir / "data"),
           # As in serve_load: this checkout first on the path, whatever the venv says.
           "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
    return Serve(workdir, env, port, read_token, admin_token)


async def prime(serve: Serve, providers: int) -> list[str]:
    """One on-demand probe per provider; returns the providers whose probe failed."""
    names = iter(_name(i) for i in range(providers))
    failed: list[str] = []
    headers = {"Authorization": f"Bearer {serve.admin_token}"}
    async with httpx.AsyncClient(base_url=serve.base_url, headers=headers,
                                 timeout=REQUEST_TIMEOUT_S) as client:
        async def probe() -> None:
            name = next(names)
            response = await client.post(f"/v1/providers/{name}/probe")
            response.raise_for_status()
            if not response.json()["result"]["ok"]:
                failed.append(name)
        await time_batch(probe, providers, PRIME_CONCURRENCY)
    return failed


def add_history(database: Path, copies: int) -> int:
    """`copies` older duplicates of every run, one minute apart; returns rows added.

    Only the `run` table (what the list reads); ids keep the time-ordered format of
    new_run_id, so the newest run stays the last one.
    """
    if copies <= 0:
        return 0
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db, db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(run)")]
        rows = db.execute(f"SELECT {', '.join(columns)} FROM run").fetchall()
        id_at, started_at = columns.index("id"), columns.index("started_at")
        marks = ", ".join("?" * len(columns))
        added = 0
        for row in rows:
            millis = int(row[id_at][:13], 16)
            started = datetime.fromisoformat(row[started_at])
            batch = []
            for k in range(1, copies + 1):
                copy = list(row)
                copy[id_at] = f"{millis - k * 60_000:013x}{secrets.token_hex(6)}"
                copy[started_at] = str(started - timedelta(minutes=k))
                batch.append(copy)
            db.executemany(f"INSERT INTO run ({', '.join(columns)}) VALUES ({marks})", batch)
            added += len(batch)
    return added


def check_list(client: httpx.Client, providers: int) -> None:
    """The list the benchmark times is the one it claims: every provider (one page of
    the default size), each with its last run."""
    items = client.get(LIST).raise_for_status().json()["items"]
    if len(items) != providers:
        raise RuntimeError(f"{LIST} returned {len(items)} items, expected {providers}")
    empty = [item["name"] for item in items if item["last_run"] is None]
    if empty:
        raise RuntimeError(f"{len(empty)} providers without last_run, e.g. {empty[:3]}")


def page_plan(database: Path, names: Sequence[str]) -> list[str]:
    """SQLite's plan for the one query a page of the list makes (store.runs.states_of)."""
    marks = ", ".join("?" for _ in names)
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute("EXPLAIN QUERY PLAN SELECT * FROM provider_state "
                          f"WHERE provider IN ({marks})", list(names)).fetchall()
    return [row[-1] for row in rows]


# -- measuring -------------------------------------------------------------------------


@dataclass
class Samples:
    """One endpoint under one load: latency of every request, batch wall and serve CPU."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    serve_cpu_s: float = 0.0
    size: int = 0

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.wall_s

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.serve_cpu_s / len(self.latencies)


def request_op(client: httpx.AsyncClient, path: str, samples: Samples) -> AsyncOp:
    async def op() -> None:
        started = time.perf_counter()
        response = await client.get(path)
        samples.latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
        samples.size = len(response.content)
    return op


def measure(runner: asyncio.Runner, client: httpx.AsyncClient, paths: Sequence[str],
            serve_pid: int, requests: int, concurrency: int) -> dict[str, Samples]:
    """`requests` per path in ROUNDS rounds, rotating which path goes first."""
    results = {path: Samples() for path in paths}
    for path in paths:  # warm-up: connections, first-query caches; not kept
        runner.run(time_batch(request_op(client, path, Samples()), WARMUP_REQUESTS,
                              concurrency))
    per_round = max(1, requests // ROUNDS)
    for index in range(ROUNDS):
        for offset in range(len(paths)):
            path = paths[(index + offset) % len(paths)]
            samples = results[path]
            cpu_before = cpu_seconds(serve_pid)
            samples.wall_s += runner.run(time_batch(request_op(client, path, samples),
                                                    per_round, concurrency))
            samples.serve_cpu_s += cpu_seconds(serve_pid) - cpu_before
    return results


def profile(runner: asyncio.Runner, client: httpx.AsyncClient, serve_pid: int,
            workdir: Path, seconds: float) -> list[str]:
    """py-spy on serve while the list is requested back to back; the top functions."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return ["py-spy not found: pip install py-spy"]
    raw = workdir / "profile.txt"
    argv = [py_spy, "record", "--pid", str(serve_pid), "--duration", f"{seconds:g}",
            "--rate", "250", "--format", "raw", "--output", str(raw)]
    with child(argv, workdir / "py-spy.log") as spy:
        time.sleep(1.0)  # attached and sampling
        deadline = time.monotonic() + seconds - 1.5
        while time.monotonic() < deadline and spy.poll() is None:
            runner.run(time_batch(request_op(client, LIST, Samples()), 20, 1))
        spy.wait(timeout=seconds + 30)
    if not raw.exists():
        return [f"py-spy failed: {(workdir / 'py-spy.log').read_text(errors='replace')[-300:]}"]
    return summarize_profile(raw.read_text(errors="replace"))


# Where a sample of serve goes, first match wins. SQLAlchemy's async layer runs its
# sync core in greenlets, whose stacks py-spy records without their caller, hence the
# markers for library frames alone. Keys are matched against the whole stack.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("json.loads of the run.result column (SQLAlchemy JSON type)", ("JSON.result_processor",)),
    ("json.dumps of the response (JSONResponse.render)", ("JSONResponse.render",)),
    ("_view: ProviderView / ProviderState built and model_dump'ed", ("_view (monitor/api",)),
    ("database calls: SQLAlchemy ORM + aiosqlite on the event loop (store.runs.states, "
     "store.runs.last_runs; waking up for the aiosqlite thread's answers)",
     ("store/runs.py", "sqlalchemy/", "sqlmodel/", "aiosqlite/", "greenlet", "_read_from_self")),
    ("HTTP: uvicorn, h11, Starlette, auth, the rest", ("",)),
)
LOOP_IDLE = "EpollSelector.select"  # the event loop waiting: for the client or the thread
WORKER_IDLE = "_connection_worker_thread (aiosqlite/core.py:59)"  # SimpleQueue.get()


def summarize_profile(raw: str, top: int = 8) -> list[str]:
    """Shares of the event loop thread's samples by bucket and by own function, and how
    busy aiosqlite's thread (where SQLite itself runs) was."""
    loop: Counter[str] = Counter()
    own: Counter[str] = Counter()
    worker = worker_idle = loop_idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f.strip()]
        if not frames or not count.isdigit():
            continue
        n = int(count)
        if frames[0].startswith("Thread._bootstrap"):  # aiosqlite's connection thread
            worker += n
            worker_idle += n if frames[-1] == WORKER_IDLE else 0
            continue
        if frames[-1].startswith(LOOP_IDLE):
            loop_idle += n
            continue
        loop[next(label for label, keys in BUCKETS if any(k in stack for k in keys))] += n
        own[_frame(frames[-1])] += n
    total = loop_idle + sum(loop.values())
    if not total:
        return ["py-spy recorded no samples"]
    out = [f"event loop thread: {total} samples, {100 * loop_idle / total:.0f}% waiting in "
           "select (for the client, or for the aiosqlite thread's answers)"]
    out += [f"  {100 * n / total:5.1f}%  {label}" for label, n in loop.most_common()]
    out.append("  top functions by own time (leaf frames):")
    out += [f"    {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    if worker:
        busy = 100 * (worker - worker_idle) / worker
        out.append(f"aiosqlite thread (runs SQLite): busy {busy:.0f}% of its {worker} samples, "
                   "the rest waiting for work")
    return out


def _frame(text: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"; keep function and file name.
    function, _, where = text.partition(" (")
    file = where.rstrip(")").rpartition(":")[0]
    return f"{function} ({'/'.join(Path(file).parts[-2:])})" if file else function


# -- report ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f}"


def table(loads: Sequence[tuple[str, dict[str, Samples]]], one: str) -> str:
    header = ("load", "endpoint", "p50 ms", "p90 ms", "p99 ms", "req/s", "serve CPU ms/req",
              "bytes", "p50 ratio", "p99 ratio", "CPU ratio")
    lines: list[tuple[str, ...]] = [header]
    for load, results in loads:
        base = results[HEALTHZ]
        for path, label in ((LIST, f"GET {LIST}"), (one, f"GET {ONE}"),
                            (HEALTHZ, f"GET {HEALTHZ} (baseline)")):
            s = results[path]
            lines.append((load, label, _ms(s.percentile(50)), _ms(s.percentile(90)),
                          _ms(s.percentile(99)), f"{s.per_second:.0f}",
                          f"{s.cpu_ms_per_request:.2f}", f"{s.size:,}",
                          f"{s.percentile(50) / base.percentile(50):.1f}",
                          f"{s.percentile(99) / base.percentile(99):.1f}",
                          f"{s.cpu_ms_per_request / base.cpu_ms_per_request:.1f}"
                          if base.serve_cpu_s > 0 else "-"))
    return aligned(lines, text_columns=2)


# -- driver ----------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path) -> int:
    requests = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    one = ONE.format(name=_name(args.providers // 2))
    paths = (LIST, one, HEALTHZ)
    with ServerProcess(workdir) as server, asyncio.Runner() as runner:
        serve = prepare(server, args.providers, workdir)
        print(f"  priming: one on-demand probe for each of {args.providers} providers",
              file=sys.stderr, flush=True)
        with serve.running("serve-prime.log") as process:
            failed = runner.run(prime(serve, args.providers))
            prime_exit = stop(process)
        if failed:
            raise RuntimeError(f"{len(failed)} priming probes failed, e.g. {failed[:3]}")
        added = add_history(serve.database, args.history - 1)
        log = workdir / "serve.log"
        print(f"  measuring: {requests} requests per endpoint and load, {ROUNDS} rounds",
              file=sys.stderr, flush=True)
        with serve.running(log.name) as process:
            headers = {"Authorization": f"Bearer {serve.read_token}"}
            with httpx.Client(base_url=serve.base_url, headers=headers,
                              timeout=REQUEST_TIMEOUT_S) as check:
                check_list(check, args.providers)
            client = httpx.AsyncClient(
                base_url=serve.base_url, headers=headers, timeout=REQUEST_TIMEOUT_S,
                limits=httpx.Limits(max_connections=CONCURRENCY,
                                    max_keepalive_connections=CONCURRENCY))
            try:
                runs_before = run_counts(serve.database)[0]
                loads = [("sequential", measure(runner, client, paths, process.pid, requests, 1)),
                         (f"{CONCURRENCY} concurrent",
                          measure(runner, client, paths, process.pid, requests, CONCURRENCY))]
                scheduled = run_counts(serve.database)[0] - runs_before
                alive(process, "monitor serve", log)()
                profiled = (profile(runner, client, process.pid, workdir, args.profile_seconds)
                            if args.profile else [])
            finally:
                runner.run(client.aclose())
            serve_exit = stop(process)

    print(f"GET {LIST} latency: {args.providers} providers (mode tls, each with "
          f"{args.history} run{'s' if args.history > 1 else ''} in the database, "
          f"{'one' if args.history == 1 else 'the newest'} as last_result), monitor serve on "
          f"SQLite; httpx {httpx.__version__}, one keep-alive client; {requests} requests per "
          f"endpoint and load after {WARMUP_REQUESTS} warm-up, {ROUNDS} alternating rounds; "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(table(loads, one))
    print()
    print(f"ratios: against GET {HEALTHZ} under the same load, same server, same run (the "
          "floor of the framework,\n  client and loopback); above 1 = slower / more CPU.\n"
          "serve CPU: utime+stime of the serve process over each batch, divided by its "
          "requests; includes\n  its idle background jobs. /proc counts 10 ms ticks, so "
          "the /healthz figure, and with it the\n  CPU ratio, is coarse.")
    print(f"runs recorded during the measurement (scheduled probes): {scheduled}; "
          f"history rows added: {added}; serve exit codes: prime {prime_exit}, "
          f"measured {serve_exit}")
    for note in log_summary(log):
        print(f"  serve log: {note}")
    plan = page_plan(serve.database, [_name(i) for i in range(args.providers)])
    print(f"query plan of a page ({args.providers} names): {'; '.join(plan)}")
    for note in failures(serve.database):
        print(f"  failed runs: {note}")
    if profiled:
        print(f"\npy-spy on monitor serve, {args.profile_seconds:g} s of sequential GET {LIST}:")
        print("\n".join(profiled))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench api-latency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_REQUESTS} requests per endpoint and load "
                             f"instead of {REQUESTS}")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per endpoint and load")
    parser.add_argument("--providers", type=int, default=PROVIDERS)
    parser.add_argument("--history", type=int, default=1,
                        help="runs per provider in the database (default 1: the primed run)")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, sample serve with py-spy during sequential list "
                             "requests and print the top functions")
    parser.add_argument("--profile-seconds", type=float, default=PROFILE_S)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (config, logs, database, profile)")
    args = parser.parse_args(argv)
    if args.providers < 1 or args.history < 1 or (args.requests or ROUNDS) < ROUNDS:
        parser.error(f"--providers and --history must be >= 1, --requests >= {ROUNDS}")
    workdir = Path(tempfile.mkdtemp(prefix="monitor-api-latency-"))
    try:
        return run(args, workdir)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
