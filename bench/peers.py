"""`python -m bench peers`: probes/s of our engine and of its peers, at the same parallelism.

The peers are processes, one per check, as a cron job or Nagios runs them:
Debian's `check_smtp -S` (monitoring-plugins, C: banner, EHLO, STARTTLS without
certificate verification, EHLO, QUIT) against our `tls` probe (banner, EHLO, NOOP,
STARTTLS verified against the sandbox CA, EHLO, QUIT, the certificate parsed), and
`swaks` (Perl: STARTTLS verified, AUTH PLAIN, one message) against our `send` probe.
At parallelism P the peer runs P at a time (a pool of P threads, each starting the
next process when its last one exits, like `xargs -P P`); ours runs as P concurrent
probes in one event loop, and also, for a like-for-like count of processes, as P
long-lived worker processes probing one at a time each. Every contender talks to
the same aiosmtpd sandbox (bench/server.py, a process of its own).

The contenders of one parallelism are timed in rotating order, round after round
(bench/timing.py), and each ratio is the median of per-round ratios. A peer run
that exits non-zero or does not show the reply it should (check_smtp's
"SMTP OK", swaks' 235 and 221 inside TLS) fails that peer: its row says why and
carries no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench import clients
from bench.report import aligned, markdown
from bench.serve_load import cpu_seconds
from bench.server import ServerInfo, ServerProcess
from bench.timing import Measure, Metered, in_loop, interleaved

PARALLELISM = (2, 8, 20)
TARGETS = {"check_smtp": 4.0, "swaks": 25.0}


@dataclass(frozen=True)
class Peer:
    name: str
    argv: list[str]
    markers: tuple[str, ...]  # every one must be in a run's output
    our_mode: str  # the probe mode doing the same work
    work: str


@dataclass(frozen=True)
class Counts:
    """Operations per round: enough for each contender to run for about a second."""

    ours: dict[str, int]
    peer: dict[str, int]
    rounds: int
    warmup: int


FULL = Counts(ours={"tls": 300, "send": 200}, peer={"check_smtp": 150, "swaks": 24},
              rounds=5, warmup=20)
QUICK = Counts(ours={"tls": 100, "send": 60}, peer={"check_smtp": 50, "swaks": 8},
               rounds=3, warmup=5)


def peers(server: ServerInfo) -> list[Peer]:
    return [
        Peer("check_smtp", [*clients.check_smtp(server, starttls=True), "-t", "10"],
             ("SMTP OK",), "tls", "STARTTLS + EHLO + QUIT"),
        Peer("swaks", clients.swaks(server), ("<~  235 ", "<~  221 "), "send",
             "STARTTLS + AUTH + one message"),
    ]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class PeerFailed(RuntimeError):
    """A peer run that did not do its whole job: no ratio against it."""


def _run_peer(peer: Peer) -> None:
    done = subprocess.run(peer.argv, stdin=subprocess.DEVNULL, capture_output=True,
                          check=False, timeout=60)
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        raise PeerFailed(f"exit {done.returncode}: {output.strip()[-300:]}")
    missing = [m.strip() for m in peer.markers if m not in output]
    if missing:
        raise PeerFailed(f"exit 0 but no {', '.join(missing)!r} in its output: "
                         f"{output.strip()[-300:]}")


def peer_pool(peer: Peer, parallel: int) -> Measure:
    """n runs of the peer, `parallel` processes at a time, each checked."""
    def measure(n: int) -> float:
        with ThreadPoolExecutor(parallel) as pool:
            started = time.perf_counter()
            # list(): a failed run raises here, in the caller.
            list(pool.map(lambda _: _run_peer(peer), range(n)))
            return time.perf_counter() - started
    return measure


class WorkerPool:
    """`parallel` long-lived processes (`python -m bench.peers --worker`), each running
    probes one at a time: ours with as many processes as the peer."""

    def __init__(self, server: ServerInfo, mode: str, parallel: int) -> None:
        info = json.dumps({"host": server.host, "port": server.port,
                           "username": server.username, "password": server.password,
                           "ca_file": str(server.ca_file)})
        self.processes = [
            subprocess.Popen([sys.executable, "-m", "bench.peers", "--worker", mode, info],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(parallel)]
        for process in self.processes:
            self._answer(process)  # "ready": imported, warmed up

    @staticmethod
    def _answer(process: subprocess.Popen[str]) -> str:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(("ready", "done")):
            raise RuntimeError(f"probe worker failed: {line!r} (exit {process.poll()})")
        return line

    def measure(self, n: int) -> float:
        shares = [n // len(self.processes) + (i < n % len(self.processes))
                  for i in range(len(self.processes))]
        started = time.perf_counter()
        for process, share in zip(self.processes, shares, strict=True):
            assert process.stdin is not None
            process.stdin.write(f"{share}\n")
            process.stdin.flush()
        for process in self.processes:
            self._answer(process)
        return time.perf_counter() - started

    def cpu(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def close(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        for process in self.processes:
            process.wait(timeout=30)


@dataclass(frozen=True)
class PeerRow:
    peer: str
    work: str
    parallel: int
    ours: float | None  # probes/s, in one process
    ours_procs: float | None  # probes/s, as `parallel` processes
    theirs: float | None
    ratio: float | None  # median per-round ratio, ours in-process / peer, probes/s
    ratio_procs: float | None
    target: float
    problem: str | None = None  # why there is no ratio
    # Client CPU ms per probe (the server's excluded): ours in one process, ours as
    # N processes, the peer's processes (what the kernel accounts to them).
    cpu_ms: tuple[float, float, float] | None = None
    # The server's CPU ms per session while serving ours (in one process) and the peer:
    # with two cores, (client + server) CPU per probe bounds the probes/s of each side.
    server_ms: tuple[float, float] | None = None


def measure_peers(server: ServerInfo, counts: Counts,
                  parallelism: Sequence[int] = PARALLELISM,
                  server_pid: int | None = None) -> Iterator[PeerRow]:
    """`server_pid`: the server's process, to count its CPU per session too."""
    def server_cpu() -> float:
        return cpu_seconds(server_pid) if server_pid is not None else 0.0

    config = clients.make_config(server)
    with asyncio.Runner() as runner:
        for peer in peers(server):
            problem = clients.peer_problem(peer.argv)
            if problem is None:
                try:
                    _run_peer(peer)
                except PeerFailed as exc:
                    problem = str(exc)
            if problem is not None:
                yield PeerRow(peer.name, peer.work, 0, None, None, None, None, None,
                              TARGETS[peer.name], problem)
                continue
            ours_n, peer_n = counts.ours[peer.our_mode], counts.peer[peer.name]
            for parallel in parallelism:
                print(f"  measuring {peer.name} vs ours at parallelism {parallel} ...",
                      file=sys.stderr, flush=True)
                workers = WorkerPool(server, peer.our_mode, parallel)
                try:
                    metered = (
                        Metered(in_loop(runner, clients.ours(config, peer.our_mode), parallel),
                                time.process_time),
                        Metered(workers.measure, workers.cpu),
                        Metered(peer_pool(peer, parallel), _children_cpu),
                    )
                    # The server's CPU around each side's own measure (and its client CPU).
                    served = tuple(Metered(m, server_cpu) for m in metered)
                    sides = list(zip(served, (ours_n, ours_n, peer_n), strict=True))
                    mine, procs, theirs = interleaved(sides, counts.rounds, counts.warmup)
                except PeerFailed as exc:
                    yield PeerRow(peer.name, peer.work, parallel, None, None, None, None,
                                  None, TARGETS[peer.name], str(exc))
                    continue
                finally:
                    workers.close()
                yield PeerRow(
                    peer.name, peer.work, parallel,
                    1 / statistics.median(mine), 1 / statistics.median(procs),
                    1 / statistics.median(theirs),
                    statistics.median(t / o for o, t in zip(mine, theirs, strict=True)),
                    statistics.median(t / p for p, t in zip(procs, theirs, strict=True)),
                    TARGETS[peer.name],
                    cpu_ms=(metered[0].median_ms(), metered[1].median_ms(),
                            metered[2].median_ms()),
                    server_ms=(served[0].median_ms(), served[2].median_ms())
                    if server_pid is not None else None)


def _verdict(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.1f}x ({'met' if ratio >= target else 'missed'})"


def table(rows: Sequence[PeerRow], *, as_markdown: bool = False) -> str:
    header = ("peer (same work)", "parallel", "ours, 1 process", "ours, N processes", "peer",
              "ratio, 1 process", "ratio, N processes", "target",
              "client CPU ms/probe: ours 1 proc, N procs, peer",
              "server CPU ms/session: ours 1 proc, peer")
    lines = [header]
    for r in rows:
        if r.problem is not None:
            where = f" at parallelism {r.parallel}" if r.parallel else ""
            lines.append((f"{r.peer} ({r.work})", str(r.parallel or "-"), "-", "-",
                          f"failed{where}: no ratio", "-", "-", f"≥ {r.target:g}x", "-", "-"))
            continue
        assert r.ours is not None and r.ours_procs is not None and r.theirs is not None
        lines.append((f"{r.peer} ({r.work})", str(r.parallel), f"{r.ours:,.0f}/s",
                      f"{r.ours_procs:,.0f}/s", f"{r.theirs:,.1f}/s",
                      _verdict(r.ratio, r.target), _verdict(r.ratio_procs, r.target),
                      f"≥ {r.target:g}x",
                      ", ".join(f"{ms:.2f}" for ms in r.cpu_ms) if r.cpu_ms else "-",
                      ", ".join(f"{ms:.2f}" for ms in r.server_ms) if r.server_ms else "-"))
    problems = [f"{r.peer}: {r.problem}" for r in rows if r.problem is not None]
    text = markdown(lines) if as_markdown else aligned(lines)
    return text + "".join(f"\n\n{problem}" for problem in problems)


# -- the worker: ours as one of N processes ------------------------------------------------


def _worker(mode: str, info: str, stdin: IO[str], stdout: IO[str]) -> int:
    fields = json.loads(info)
    server = ServerInfo(host=fields["host"], port=fields["port"], username=fields["username"],
                        password=fields["password"], ca_file=Path(fields["ca_file"]))
    op = clients.ours(clients.make_config(server), mode)
    with asyncio.Runner() as runner:
        runner.run(op())  # imports, the cached TLS context, the first connection
        print("ready", file=stdout, flush=True)
        for line in stdin:
            count = int(line)
            for _ in range(count):
                runner.run(op())
            print(f"done {count}", file=stdout, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, 3 rounds")
    parser.add_argument("--parallel", default=",".join(map(str, PARALLELISM)),
                        help="comma-separated parallelisms (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "SERVER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(*args.worker, sys.stdin, sys.stdout)
    parallelism = [int(p) for p in args.parallel.split(",")]
    with tempfile.TemporaryDirectory(prefix="monitor-bench-peers-") as tmp:
        process = ServerProcess(Path(tmp))
        with process as server:
            load = os.getloadavg()[0]
            rows = list(measure_peers(server, QUICK if args.quick else FULL, parallelism,
                                      server_pid=process.pid))
            print(f"peers at equal parallelism: {os.cpu_count()} CPUs, load average "
                  f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end; probes/s, median of "
                  f"{(QUICK if args.quick else FULL).rounds} rounds")
            print(table(rows, as_markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
