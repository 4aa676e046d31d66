"""`python -m bench serve-load`: CPU and memory of `monitor serve` under a steady probe load.

`monitor serve` runs as a subprocess with 50 providers probed every 5 s (10 probes/s)
against the aiosmtpd sandbox (bench/server.py, its own process), its own temporary
SQLite database and a free loopback port. After a warm-up, its CPU time
(utime+stime, /proc/<pid>/stat) and resident memory (VmRSS, /proc/<pid>/status)
are sampled every second, and probes completed are counted in its `run` table.

The baseline, measured in the same run: a minimal asyncio loop of raw aiosmtplib
sessions in a subprocess of its own, doing the same SMTP work at the same rate
(connect, EHLO, NOOP, STARTTLS verified against the sandbox CA, EHLO, [AUTH, one
message of the probe's size,] QUIT). Ratios serve/baseline are what to read: the
machine is shared and absolute figures drift from run to run.

Variants: `tls` (mode tls) and `send` (mode send with AUTH PLAIN and one message), both
run by default; `connect` (mode connect: plaintext connect, EHLO, NOOP, QUIT) on request.
`--interval` sets the providers' interval (rate = providers / interval).

With `--replicas N` it measures N `monitor serve` processes on one PostgreSQL database
instead, sharing the providers out (see bench/replicas.py, which runs that mode).

This module is also the baseline's worker (`python -m bench.serve_load --worker`).
That is why its top-level imports are stdlib only: the worker's memory is part of
the measurement, and importing the project (pydantic, the sandbox) there would
inflate the baseline. The driver imports what it needs inside functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: importing it loads the project (see above)
    from bench.server import ServerInfo

PROVIDERS = 50
INTERVAL_S = 5.0
WARMUP_S = 10.0
DURATION_S = 60.0
QUICK_DURATION_S = 20.0
SAMPLE_EVERY_S = 1.0
STARTUP_DEADLINE_S = 60.0
STOP_TIMEOUT_S = 20.0  # serve drains in-flight probes on SIGTERM; give it room before kill
VARIANTS = ("tls", "send")  # what `--variant all` runs
MODES = ("connect", *VARIANTS)

# The same names and timeout as bench/clients.py, so the baseline session matches
# the providers' configuration (clients.py is not imported here: see the docstring).
HELO = "bench.localhost"
SENDER = "probe@bench.localhost"
RECIPIENT = "seed@bench.localhost"
SESSION_TIMEOUT_S = 10.0

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


# -- sampling /proc --------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name (field 2) may hold spaces or ')'; fields after the last ')'
        # start at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class Usage:
    """One process over the measured window."""

    cpu_s: float
    cpu_pct: float  # of one core
    peak_rss: int
    final_rss: int


def sample(pids: Mapping[str, int], seconds: float, check: Callable[[], None]) -> dict[str, Usage]:
    """Sample every process once a second for `seconds`; `check` raises if one has died."""
    start_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    peak = dict.fromkeys(pids, 0)
    final = dict.fromkeys(pids, 0)
    started = time.monotonic()
    deadline = started + seconds
    tick = started
    while True:
        for name, pid in pids.items():
            final[name] = rss_bytes(pid)
            peak[name] = max(peak[name], final[name])
        check()
        if tick >= deadline:
            break
        # Sleep to the next whole tick from the start, not "1 s from now", so the
        # samples do not drift by the time each round of reading takes.
        tick = min(tick + SAMPLE_EVERY_S, deadline)
        time.sleep(max(0.0, tick - time.monotonic()))
    elapsed = time.monotonic() - started
    usage = {}
    for name, pid in pids.items():
        used = cpu_seconds(pid) - start_cpu[name]
        usage[name] = Usage(used, 100 * used / elapsed, peak[name], final[name])
    return usage


# -- child processes -------------------------------------------------------------------


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it has not exited in time; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextlib.contextmanager
def child(argv: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None,
          stdin: int | None = subprocess.DEVNULL,
          stdout: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess stopped on exit, also when the body raises; stderr goes to `log`."""
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdin=stdin,
                                   stdout=sink if stdout is None else stdout, stderr=sink,
                                   env=dict(env) if env is not None else None)
    try:
        yield process
    finally:
        stop(process)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def sandbox_pid() -> int:
    """The pid of our `python -m bench.server` child (ServerProcess does not expose it)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rpartition(")")[2].split()[1]
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited while we looked
            continue
        if ppid == me and b"bench.server" in cmdline:
            return int(entry.name)
    raise RuntimeError("benchmark server process not found")


def free_port() -> int:
    # The port is free when we look; serve binds it a second later. A collision
    # would show as serve failing to start, not as a wrong measurement.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(process: subprocess.Popen[bytes], what: str, log: Path) -> Callable[[], None]:
    def check() -> None:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"{what} exited {process.returncode}; {log}:\n"
                               + "\n".join(tail))
    return check


# -- monitor serve ---------------------------------------------------------------------


def write_config(server: ServerInfo, mode: str, providers: int, path: Path,
                 interval: float = INTERVAL_S) -> None:
    import yaml

    from bench.clients import provider_fields

    entries = []
    for index in range(providers):
        fields = provider_fields(server, f"{mode}-{index:02d}", mode)
        fields["interval"] = f"{interval:g}s"
        entries.append(fields)
    path.write_text(yaml.safe_dump({"settings": {"helo": HELO}, "providers": entries}),
                    encoding="utf-8")


def wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    # urllib and sqlite3 are imported where used: ~2 MB the baseline worker would carry.
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    check = alive(process, "monitor serve", log)
    while True:
        check()
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"monitor serve not healthy after {STARTUP_DEADLINE_S:g} s; "
                               f"see {log}")
        time.sleep(0.2)


def run_counts(database: Path) -> tuple[int, int]:
    """(runs, failed runs) recorded so far; read-only, WAL lets us read while serve writes."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                            timeout=30)) as db:
        total, failed = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(NOT ok), 0) FROM run").fetchone()
    return int(total), int(failed)


def failures(database: Path) -> list[str]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                            timeout=30)) as db:
        rows = db.execute("SELECT failed_step, failure_class, COUNT(*) FROM run WHERE NOT ok "
                          "GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
    return [f"{n} at {step} ({cls})" for step, cls, n in rows]


def log_summary(log: Path) -> list[str]:
    """serve's JSON log: lines per level, the commonest warnings/errors, non-JSON lines."""
    levels: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    raw: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raw.append(line)
            continue
        level = str(record.get("level", "?"))
        levels[level] += 1
        if level not in ("DEBUG", "INFO"):
            problems[f"{level} {record.get('logger')}: {record.get('msg')}"] += 1
    out = [f"levels {dict(levels)}"]
    out += [f"{n}x {what}" for what, n in problems.most_common(5)]
    if raw:
        out.append(f"{len(raw)} non-JSON lines, first: {raw[0][:160]}")
    return out


@dataclass(frozen=True)
class Phase:
    """One measured side: the process, the sandbox meanwhile, and the sessions done."""

    usage: Usage
    sandbox: Usage
    seconds: float
    sessions: int
    failed: int
    exit_code: int
    notes: tuple[str, ...] = ()


def measure_serve(server: ServerInfo, server_pid: int, mode: str, providers: int, warmup: float,
                  seconds: float, workdir: Path, interval: float = INTERVAL_S) -> Phase:
    config, database, log = workdir / "monitor.yaml", workdir / "monitor.db", workdir / "serve.log"
    write_config(server, mode, providers, config, interval)
    port = free_port()
    env = {**os.environ, "MONITOR_CONFIG": str(config),
           "MONITOR_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
           "MONITOR_LISTEN": f"127.0.0.1:{port}", "MONITOR_LOG_LEVEL": "INFO",
           # The checkout this benchmark belongs to, first on the path: the venv's editable
           # install resolves `monitor` by itself only if it was installed with an intact tree.
           "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
    # The console script of this venv: the process measured is `monitor serve` itself.
    monitor = Path(sys.executable).with_name("monitor")
    with child([str(monitor), "serve"], log, env=env) as process:
        wait_healthy(process, port, log)
        time.sleep(warmup)
        before = run_counts(database)
        usage = sample({"serve": process.pid, "sandbox": server_pid}, seconds,
                       alive(process, "monitor serve", log))
        after = run_counts(database)
        code = stop(process)
    notes = tuple(log_summary(log)) + tuple(f"failed runs (whole phase): {f}"
                                            for f in failures(database))
    return Phase(usage["serve"], usage["sandbox"], seconds, after[0] - before[0],
                 after[1] - before[1], code, notes)


def measure_baseline(server: ServerInfo, server_pid: int, mode: str, rate: float, warmup: float,
                     seconds: float, workdir: Path) -> Phase:
    log = workdir / "baseline.log"
    spec = {"host": server.host, "port": server.port, "ca_file": str(server.ca_file),
            "username": server.username, "password": server.password, "mode": mode,
            "rate": rate, "message_size": probe_message_size()}
    argv = [sys.executable, "-m", "bench.serve_load", "--worker"]
    with child(argv, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:
        assert process.stdin is not None and process.stdout is not None
        # The spec (with the sandbox password) goes over stdin, not argv, which `ps` shows.
        process.stdin.write(json.dumps(spec).encode() + b"\n")
        worker = WorkerClient(process.stdin, process.stdout)
        worker.counts()  # answers once its loop runs: it is up
        time.sleep(warmup)
        before = worker.counts()
        usage = sample({"baseline": process.pid, "sandbox": server_pid}, seconds,
                       alive(process, "baseline worker", log))
        after = worker.counts()
        code = stop(process)
    errors = log.read_text(errors="replace").splitlines()
    return Phase(usage["baseline"], usage["sandbox"], seconds, after[0] - before[0],
                 after[1] - before[1], code, tuple(errors[:3]))


@dataclass
class WorkerClient:
    stdin: IO[bytes]
    stdout: IO[bytes]

    def counts(self) -> tuple[int, int]:
        self.stdin.write(b"?\n")
        self.stdin.flush()
        line = self.stdout.readline()
        if not line:
            raise RuntimeError("baseline worker exited")
        reply = json.loads(line)
        return int(reply["ok"]) + int(reply["failed"]), int(reply["failed"])


def probe_message_size() -> int:
    """Bytes of the message a send probe carries, so the baseline sends as many."""
    from datetime import UTC, datetime

    from monitor.probe.message import MessageSpec, build_message, new_token

    spec = MessageSpec(sender=SENDER, recipients=(RECIPIENT,), subject="Delivery Monitor probe")
    body, _ = build_message(spec, token=new_token(), now=datetime.now(UTC), helo=HELO)
    return len(body)


# -- the baseline worker ---------------------------------------------------------------


class Load:
    """Starts one raw aiosmtplib session every 1/rate s, whatever the previous ones do,
    as serve's scheduler does; counts the outcomes."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        # One context for the process, as the probe caches its own: building one per
        # session would measure OpenSSL's CA loading, not the session.
        self.context = ssl.create_default_context(cafile=spec["ca_file"])
        self.message = _message(int(spec["message_size"]))
        self.ok = 0
        self.failed = 0
        self.stopping = asyncio.Event()

    async def session(self) -> None:
        import aiosmtplib

        s = self.spec
        smtp = aiosmtplib.SMTP(hostname=s["host"], port=s["port"], local_hostname=HELO,
                               start_tls=False, tls_context=self.context,
                               timeout=SESSION_TIMEOUT_S)
        try:
            await smtp.connect()
            await smtp.ehlo()
            await smtp.noop()
            if s["mode"] != "connect":  # connect mode stays in plaintext, like the provider
                await smtp.starttls(tls_context=self.context, server_hostname=s["host"])
                await smtp.ehlo()
            if s["mode"] == "send":
                await smtp.login(s["username"], s["password"])
                await smtp.sendmail(SENDER, [RECIPIENT], self.message)
            await smtp.quit()
            self.ok += 1
        except Exception as exc:  # counted and reported, like a failed probe run
            self.failed += 1
            if self.failed <= 3:
                print(f"baseline session failed: {exc!r}", file=sys.stderr, flush=True)
            smtp.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sessions: set[asyncio.Task[None]] = set()
        period = 1 / float(self.spec["rate"])
        due = loop.time()
        while not self.stopping.is_set():
            task = loop.create_task(self.session())
            sessions.add(task)
            task.add_done_callback(sessions.discard)
            due += period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(0.0, due - loop.time()))
        if sessions:
            await asyncio.wait(sessions, timeout=SESSION_TIMEOUT_S)


# Like bench.clients' message builder; repeated because this baseline process must not
# import the project (its RSS is the measurement).
def _message(size: int) -> bytes:
    head = (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: benchmark\r\n"
            "Auto-Submitted: auto-generated\r\n\r\n").encode()
    line = b"x" * 70 + b"\r\n"
    body = (line * (size // len(line) + 1))[: max(size - len(head) - 2, 0)]
    return head + body + b"\r\n"


async def _worker() -> None:
    loop = asyncio.get_running_loop()
    # stdin through the event loop, not a reader thread: a thread blocked in read()
    # would hold up the interpreter's exit after SIGTERM.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    load = Load(json.loads(await reader.readline()))
    loop.add_signal_handler(signal.SIGTERM, load.stopping.set)

    async def answer() -> None:
        while await reader.readline():
            print(json.dumps({"ok": load.ok, "failed": load.failed}), flush=True)
        load.stopping.set()  # stdin closed: the driver is gone

    control = loop.create_task(answer())
    await load.run()
    control.cancel()


# -- driver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    variant: str
    serve: Phase
    baseline: Phase


def _ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}" if base else "-"


def table(results: Sequence[Result], expected: float) -> str:
    header = ("variant", "metric", "serve", "baseline", "ratio serve/baseline")
    lines: list[tuple[str, ...]] = [header]
    for r in results:
        s, b = r.serve, r.baseline
        metrics = [
            ("CPU % of one core", s.usage.cpu_pct, b.usage.cpu_pct, "{:.1f}"),
            ("CPU ms per session", 1000 * s.usage.cpu_s / max(s.sessions, 1),
             1000 * b.usage.cpu_s / max(b.sessions, 1), "{:.2f}"),
            ("peak RSS MB", s.usage.peak_rss / MB, b.usage.peak_rss / MB, "{:.1f}"),
            ("final RSS MB", s.usage.final_rss / MB, b.usage.final_rss / MB, "{:.1f}"),
            (f"sessions/s (expected {expected:g})", s.sessions / s.seconds,
             b.sessions / b.seconds, "{:.2f}"),
            ("sessions completed", s.sessions, b.sessions, "{:.0f}"),
            ("sessions failed", s.failed, b.failed, "{:.0f}"),
            ("sandbox CPU % meanwhile", s.sandbox.cpu_pct, b.sandbox.cpu_pct, "{:.1f}"),
        ]
        for name, ours, base, fmt in metrics:
            ratio = "-" if name == "sessions failed" else _ratio(ours, base)
            lines.append((r.variant, name, fmt.format(ours), fmt.format(base), ratio))
    from bench.report import aligned

    return aligned(lines, text_columns=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench serve-load",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"measure {QUICK_DURATION_S:g} s instead of {DURATION_S:g} s")
    parser.add_argument("--duration", type=float, default=None,
                        help=f"seconds measured (default {DURATION_S:g}; with --replicas two "
                             "intervals, --quick one)")
    parser.add_argument("--warmup", type=float, default=None,
                        help=f"seconds before measuring (default {WARMUP_S:g}; with --replicas "
                             "one interval, at least 20)")
    parser.add_argument("--providers", type=int, default=PROVIDERS)
    parser.add_argument("--interval", type=float, default=INTERVAL_S,
                        help=f"each provider's interval in seconds (default {INTERVAL_S:g})")
    parser.add_argument("--variant", choices=(*MODES, "all"), default=None,
                        help="the providers' mode (default: all = tls and send; with "
                             "--replicas: connect)")
    parser.add_argument("--replicas", type=int, default=0, metavar="N",
                        help="N monitor serve processes on one fresh PostgreSQL database, "
                             "instead of one on SQLite against the raw aiosmtplib loop")
    parser.add_argument("--phases", default="partitioned,race",
                        help="with --replicas, comma-separated, in order: partitioned (as "
                             "built), race (the old design, emulated: every replica believes "
                             "it is alone), single (one replica, every provider), bystander "
                             "(one replica owning ~1%%, beside fake live ones); see "
                             "bench/replicas.py")
    parser.add_argument("--markdown", action="store_true",
                        help="with --replicas, also print the comparison as a Markdown table")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (configs, logs, databases)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(_worker())
        return 0
    if args.providers < 1 or args.interval <= 0 or args.replicas < 0:
        parser.error("--providers must be at least 1, --interval above 0, --replicas >= 0")
    if args.replicas:
        from bench import replicas  # imports the project: never in the worker (see above)

        return replicas.main(args, parser, argv)

    seconds = args.duration or (QUICK_DURATION_S if args.quick else DURATION_S)
    args.warmup = WARMUP_S if args.warmup is None else args.warmup
    rate = args.providers / args.interval
    variant = args.variant or "all"
    variants = VARIANTS if variant == "all" else (variant,)
    workdir = Path(tempfile.mkdtemp(prefix="monitor-serve-load-"))
    results: list[Result] = []
    try:
        # Imported here, not at the top: the worker runs this module too (see the docstring).
        from bench.server import ServerProcess

        with ServerProcess(workdir) as server:
            server_pid = sandbox_pid()
            for variant in variants:
                phase_dir = workdir / f"phase-{variant}"  # the sandbox owns workdir/tls
                phase_dir.mkdir()
                print(f"  {variant}: monitor serve, {args.warmup:g} s warm-up + {seconds:g} s",
                      file=sys.stderr, flush=True)
                serve = measure_serve(server, server_pid, variant, args.providers,
                                      args.warmup, seconds, phase_dir, args.interval)
                print(f"  {variant}: raw aiosmtplib baseline, {args.warmup:g} s warm-up + "
                      f"{seconds:g} s", file=sys.stderr, flush=True)
                baseline = measure_baseline(server, server_pid, variant, rate, args.warmup,
                                            seconds, phase_dir)
                results.append(Result(variant, serve, baseline))
    except BaseException:
        # A later variant failing should not throw away the ones already measured.
        if results:
            report(results, args.providers, args.warmup, seconds, args.interval, partial=True)
        raise
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args.providers, args.warmup, seconds, args.interval)
    return 0


def report(results: Sequence[Result], providers: int, warmup: float, seconds: float,
           interval: float = INTERVAL_S, partial: bool = False) -> None:
    import aiosmtplib

    print(f"monitor serve under load{' (PARTIAL: a later variant failed)' if partial else ''}: "
          f"{providers} providers every {interval:g} s against the aiosmtpd sandbox; "
          f"{warmup:g} s warm-up, {seconds:g} s measured, sampled every {SAMPLE_EVERY_S:g} s; "
          f"Python {platform.python_version()}, aiosmtplib {aiosmtplib.__version__}, "
          f"{os.cpu_count()} CPUs")
    print(table(results, providers / interval))
    print()
    print("baseline: one raw aiosmtplib session every 1/rate s in a bare asyncio process, "
          "same SMTP commands\n  and (except in connect mode) CA-verified STARTTLS; no "
          "scheduler, database, HTTP server,\n  step records or certificate parsing.")
    for r in results:
        print(f"{r.variant}: serve exit {r.serve.exit_code}, baseline exit "
              f"{r.baseline.exit_code}")
        for note in r.serve.notes:
            print(f"  serve log: {note}")
        for note in r.baseline.notes:
            print(f"  baseline: {note}")


if __name__ == "__main__":
    sys.exit(main())
