"""`python -m bench tls-memory`: memory per in-flight TLS probe, and the cap's throughput.

N send probes (STARTTLS verified, AUTH PLAIN) are held open against a server that
never answers MAIL FROM (bench/server.py `--stall`, a process of its own, so its
TLS buffers are not ours). Each contender runs in a fresh worker process
(`python -m bench.tls_memory --worker`): it imports, warms up with a few complete
`tls` probes and one session of its kind held at MAIL (first-use costs), collects
garbage and reads its VmRSS; starts N sessions; once the server has seen all N
reach MAIL, it collects garbage and reads VmRSS again, then once more after
glibc's malloc_trim(0) (heap freed amid the N handshakes but kept by malloc).
Per probe = (after - before) / N. With `tracemalloc` the same is done for the
Python allocations only (a separate run: tracing inflates RSS).

Contenders: ours (the probe, TLS read buffer capped at 4 KiB by
monitor/probe/tls_buffer.py), ours with the cap lifted (asyncio's 256 KiB), and
raw aiosmtplib doing the same session by hand. Rounds alternate the contenders;
figures are medians.

The cap must not cost throughput: send probes at 20 concurrent against the
ordinary sandbox, capped against uncapped, interleaved in one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosmtplib

from bench import clients
from bench.report import aligned, markdown
from bench.serve_load import rss_bytes
from bench.server import ServerInfo, ServerProcess
from bench.timing import Measure, in_loop, interleaved
from monitor.probe import run_probe, tls_buffer

KINDS = ("ours", "ours-uncapped", "raw")
TARGET_KB = 64.0
KB = 1024
ASYNCIO_DEFAULT = 256 * KB
HOLD = timedelta(hours=1)


@dataclass(frozen=True)
class Preset:
    probes: int
    rounds: int
    throughput_n: int
    throughput_rounds: int


FULL = Preset(probes=200, rounds=3, throughput_n=200, throughput_rounds=7)
QUICK = Preset(probes=100, rounds=1, throughput_n=60, throughput_rounds=3)


# -- the worker: one contender, N sessions held open ------------------------------------


def _server(info: str) -> ServerInfo:
    f = json.loads(info)
    return ServerInfo(host=f["host"], port=f["port"], username=f["username"],
                      password=f["password"], ca_file=Path(f["ca_file"]))


@contextlib.contextmanager
def uncapped() -> Iterator[None]:
    """The probe with asyncio's own buffer: the cap set to asyncio's size is no cap."""
    saved = tls_buffer.READ_BUFFER
    tls_buffer.READ_BUFFER = ASYNCIO_DEFAULT
    try:
        yield
    finally:
        tls_buffer.READ_BUFFER = saved


def _session(kind: str, server: ServerInfo) -> Callable[[], Awaitable[Any]]:
    """One send session of `kind`; against the stall server it waits at MAIL."""
    config = clients.make_config(server)
    provider = config.provider("send")
    assert provider is not None
    # Held for as long as the driver needs: no step or probe timeout may end a session.
    provider = provider.model_copy(update={"timeout": HOLD, "step_timeout": HOLD})
    if kind == "raw":
        context = ssl.create_default_context(cafile=str(server.ca_file))

        async def raw() -> None:
            smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port,
                                   local_hostname=clients.HELO, start_tls=False,
                                   timeout=HOLD.total_seconds())
            await smtp.connect()
            await smtp.ehlo()
            await smtp.noop()
            await smtp.starttls(tls_context=context, server_hostname=server.host)
            await smtp.ehlo()
            await smtp.login(server.username, server.password)
            await smtp.mail(clients.SENDER)
        return raw
    return lambda: run_probe(provider, config)


async def _hold(kind: str, server: ServerInfo, count: int, traced: bool) -> dict[str, float]:
    warm = clients.ours(clients.make_config(server), "tls")
    for _ in range(3):  # imports, the cached context, first connections: not counted
        await warm()
    session = _session(kind, server)
    # One session of the kind, held at MAIL before the first reading: what its path
    # imports and caches on first use (the message template, say) is paid once, not by N.
    tasks = [asyncio.create_task(session())]
    print("warming", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the driver: that one is at MAIL
    gc.collect()
    if traced:
        tracemalloc.start()
    before_rss, before_py = rss_bytes(os.getpid()), _traced()
    tasks += [asyncio.create_task(session()) for _ in range(count)]
    print("started", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the driver: all N are at MAIL
    gc.collect()
    after_rss, after_py = rss_bytes(os.getpid()), _traced()
    # What the heap keeps but no longer uses (freed amid N concurrent handshakes), given
    # back: the rest is what the held sessions themselves occupy.
    trimmed_rss = after_rss
    if _malloc_trim():
        trimmed_rss = rss_bytes(os.getpid())
    done = [t for t in tasks if t.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"rss_per_probe": (after_rss - before_rss) / count,
            "trimmed_per_probe": (trimmed_rss - before_rss) / count,
            "py_per_probe": (after_py - before_py) / count, "finished_early": len(done)}


def _malloc_trim() -> bool:
    """glibc's malloc_trim(0); False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    libc.malloc_trim(0)
    return True


def _traced() -> float:
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0.0


def _worker(kind: str, info: str, count: int, traced: bool) -> int:
    server = _server(info)
    with uncapped() if kind == "ours-uncapped" else contextlib.nullcontext():
        result = asyncio.run(_hold(kind, server, count, traced))
    print(json.dumps(result), flush=True)
    return 0


# -- the driver -----------------------------------------------------------------------------


def _held(stall: ServerProcess, server: ServerInfo, kind: str, count: int,
          traced: bool) -> dict[str, float]:
    info = json.dumps({"host": server.host, "port": server.port, "username": server.username,
                       "password": server.password, "ca_file": str(server.ca_file)})
    argv = [sys.executable, "-m", "bench.tls_memory", "--worker", kind, info, str(count),
            *(["--tracemalloc"] if traced else [])]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as worker:
        assert worker.stdin is not None and worker.stdout is not None
        for expected, sessions in (("warming", 1), ("started", count)):
            if worker.stdout.readline().strip() != expected:
                raise RuntimeError(f"tls-memory worker {kind} failed (exit {worker.wait()})")
            stall.wait_stalled(stall.stalled + sessions)
            worker.stdin.write("go\n")
            worker.stdin.flush()
        result: dict[str, float] = json.loads(worker.stdout.readline())
    if result["finished_early"]:
        raise RuntimeError(f"{kind}: {result['finished_early']} sessions ended before the "
                           "measurement; nothing was held open")
    return result


@dataclass(frozen=True)
class Memory:
    kind: str
    rss_kb: float  # median per probe
    trimmed_kb: float  # the same run's, after malloc_trim(0)
    py_kb: float | None  # tracemalloc per probe, one run


def measure_memory(stall: ServerProcess, server: ServerInfo, preset: Preset) -> list[Memory]:
    rss: dict[str, list[float]] = {k: [] for k in KINDS}
    trimmed: dict[str, list[float]] = {k: [] for k in KINDS}
    for index in range(preset.rounds):
        for step in range(len(KINDS)):
            kind = KINDS[(index + step) % len(KINDS)]
            print(f"  holding {preset.probes} {kind} sessions ...", file=sys.stderr, flush=True)
            held = _held(stall, server, kind, preset.probes, False)
            rss[kind].append(held["rss_per_probe"])
            trimmed[kind].append(held["trimmed_per_probe"])
    traced = {kind: _held(stall, server, kind, preset.probes, True)["py_per_probe"]
              for kind in ("ours", "ours-uncapped")}
    return [Memory(k, statistics.median(rss[k]) / KB, statistics.median(trimmed[k]) / KB,
                   traced[k] / KB if k in traced else None) for k in KINDS]


def measure_throughput(server: ServerInfo, preset: Preset) -> tuple[float, float, float]:
    """Send probes at 20 concurrent: (capped probes/s, uncapped probes/s, median ratio)."""
    config = clients.make_config(server)
    with asyncio.Runner() as runner:
        capped = in_loop(runner, clients.ours(config, "send"), 20)

        def uncapped_measure(n: int) -> float:
            with uncapped():
                return capped(n)
        sides: list[tuple[Measure, int]] = [(capped, preset.throughput_n),
                                            (uncapped_measure, preset.throughput_n)]
        mine, theirs = interleaved(sides, preset.throughput_rounds, 20)
    ratio = statistics.median(t / m for m, t in zip(mine, theirs, strict=True))
    return 1 / statistics.median(mine), 1 / statistics.median(theirs), ratio


def table(memory: Sequence[Memory], throughput: tuple[float, float, float], probes: int, *,
          as_markdown: bool = False) -> str:
    header = ("what", "per in-flight TLS probe", "after malloc_trim(0)",
              "tracemalloc (Python heap)", "vs target")
    lines = [header]
    for m in memory:
        label = {"ours": f"ours ({tls_buffer.READ_BUFFER // KB} KiB TLS read buffer)",
                 "ours-uncapped": "ours, cap lifted (asyncio's 256 KiB)",
                 "raw": "raw aiosmtplib, same session"}[m.kind]
        verdict = "-"
        if m.kind == "ours":
            verdict = f"≤ {TARGET_KB:g} KB: {'met' if m.rss_kb <= TARGET_KB else 'missed'}"
        lines.append((f"{label}, {probes} held after AUTH", f"{m.rss_kb:,.1f} KB RSS",
                      f"{m.trimmed_kb:,.1f} KB RSS",
                      "-" if m.py_kb is None else f"{m.py_kb:,.1f} KB", verdict))
    capped, lifted, ratio = throughput
    lines.append(("send, 20 concurrent: capped vs cap lifted", f"{capped:,.0f} vs {lifted:,.0f} "
                  "probes/s", "-", "-", f"ratio {ratio:.2f} (no loss if ≥ ~0.97)"))
    return markdown(lines) if as_markdown else aligned(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tls-memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 probes, one round")
    parser.add_argument("--probes", type=int, default=None, help="sessions held open")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "SERVER", "N"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, info, count = args.worker
        return _worker(kind, info, int(count), args.tracemalloc)
    preset = QUICK if args.quick else FULL
    if args.probes:
        preset = Preset(args.probes, preset.rounds, preset.throughput_n,
                        preset.throughput_rounds)
    if not tls_buffer.applies():
        print("error: this Python's asyncio has no SSLProtocol.max_size; nothing to cap",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="monitor-bench-mem-") as tmp:
        load = os.getloadavg()[0]
        (Path(tmp) / "stall").mkdir()
        stall = ServerProcess(Path(tmp) / "stall", stall=True)
        with stall as info:
            memory = measure_memory(stall, info, preset)
        with ServerProcess(Path(tmp)) as server:
            throughput = measure_throughput(server, preset)
        print(f"TLS memory: load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
              f"RSS median of {preset.rounds} rounds, each contender in a fresh process")
        print(table(memory, throughput, preset.probes, as_markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
