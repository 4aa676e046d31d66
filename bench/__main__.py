"""`python -m bench [--quick] [--markdown]`: start the server process, run every comparison
(the engine rows, then `peers` and `tls-memory`), print the tables.

Subcommands with their own options: `serve-load`, `api-latency`, `peers`, `tls-memory`,
`alerts`, `record`, `cli-start`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib

from bench import (
    alerts,
    api_latency,
    cli_start,
    clients,
    peers,
    record,
    serve_load,
    tls_memory,
)
from bench.report import table
from bench.scenarios import FULL, QUICK, Bench
from bench.server import ServerProcess

NOTES = """\
ratio: median of per-round ratios, in the row's unit (so it may differ slightly from the
  ratio of the two medians); probes/s above 1 = ours faster, ms/run above 1 = ours slower.
CPU ms/probe: this process's CPU (the server is another process) per probe; above 1 = ours
  costlier. Waiting for a core is not CPU, so it is steadier than probes/s on a busy machine.
ours = run_probe, except the local_hostname rows (both raw aiosmtplib: set vs unset).
raw aiosmtplib does the probe's commands (incl. NOOP) with the same CA-verifying TLS context
  and a message of the same size; it skips step records, certificate parsing, the result model.
swaks: a Perl process per run; STARTTLS verified against the sandbox CA (--tls-verify
  --tls-ca-path), AUTH PLAIN, one message. The probe also verifies and sends one message.
check_smtp: a C process per run; plain: banner, HELO (refused 530 here: the server requires
  STARTTLS), QUIT; -S: EHLO, STARTTLS (no certificate verification), EHLO, QUIT.
`monitor probe` CLI: a fresh Python interpreter per run, start-up and imports included."""


def _tools_missing() -> list[str]:
    wanted = {"swaks": shutil.which("swaks"), "check_smtp": Path(clients.CHECK_SMTP)}
    return [name for name, found in wanted.items() if not found or not Path(found).exists()]


def main() -> int:
    if sys.argv[1:2] == ["serve-load"]:  # its own options: `python -m bench serve-load -h`
        return serve_load.main(sys.argv[2:])
    if sys.argv[1:2] == ["peers"]:  # its own options: `python -m bench peers -h`
        return peers.main(sys.argv[2:])
    if sys.argv[1:2] == ["tls-memory"]:  # its own options: `python -m bench tls-memory -h`
        return tls_memory.main(sys.argv[2:])
    if sys.argv[1:2] == ["api-latency"]:  # its own options: `python -m bench api-latency -h`
        return api_latency.main(sys.argv[2:])
    if sys.argv[1:2] == ["cli-start"]:  # its own options: `python -m bench cli-start -h`
        return cli_start.main(sys.argv[2:])
    if sys.argv[1:2] == ["record"]:  # its own options: `python -m bench record -h`
        return record.main(sys.argv[2:])
    if sys.argv[1:2] == ["alerts"]:  # its own options: `python -m bench alerts -h`
        return alerts.main(sys.argv[2:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small counts: a smoke run of every scenario in ~2 min")
    parser.add_argument("--markdown", action="store_true", help="the tables as Markdown")
    args = parser.parse_args()
    preset = QUICK if args.quick else FULL
    missing = _tools_missing()
    if missing:
        print(f"error: not installed: {', '.join(missing)}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp, \
            (process := ServerProcess(Path(tmp))) as server, asyncio.Runner() as runner:
        print(f"server: aiosmtpd sandbox on {server.host}:{server.port} in its own process; "
              f"{os.cpu_count()} CPUs", file=sys.stderr)
        for argv in (clients.swaks(server), clients.check_smtp(server, starttls=True)):
            problem = clients.peer_problem(argv)
            if problem:  # a ratio against a peer that failed would measure its failure
                print(f"error: {Path(argv[0]).name} does not work here: {problem}",
                      file=sys.stderr)
                return 2
        load = os.getloadavg()
        rows = list(Bench(runner, server, Path(tmp), preset).rows())
        peer_rows = list(peers.measure_peers(server, peers.QUICK if args.quick else peers.FULL,
                                             server_pid=process.pid))
        memory_preset = tls_memory.QUICK if args.quick else tls_memory.FULL
        (Path(tmp) / "stall").mkdir()
        stall = ServerProcess(Path(tmp) / "stall", stall=True)
        with stall as stall_info:
            memory = tls_memory.measure_memory(stall, stall_info, memory_preset)
        throughput = tls_memory.measure_throughput(server, memory_preset)
    elapsed = time.perf_counter() - started

    print(f"Delivery Monitor benchmarks ({'quick' if args.quick else 'full'}): "
          f"Python {platform.python_version()}, aiosmtplib {aiosmtplib.__version__}, "
          f"{os.cpu_count()} CPUs; median of {preset.rounds} rounds after warm-up; "
          f"concurrency {preset.concurrency}")
    print(f"load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load)}, "
          f"at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(table(rows, as_markdown=args.markdown))
    print()
    print(NOTES)
    print("\nPeers at equal parallelism (`python -m bench peers`): ratio = ours probes/s "
          "over the peer's, median of per-round ratios")
    print(peers.table(peer_rows, as_markdown=args.markdown))
    print(f"\nTLS memory (`python -m bench tls-memory`), median of {memory_preset.rounds} "
          "rounds, a fresh process each")
    print(tls_memory.table(memory, throughput, memory_preset.probes,
                           as_markdown=args.markdown))
    print(f"\n(total {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
