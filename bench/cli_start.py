"""`python -m bench cli-start`: how long `monitor probe` takes as a whole process.

The provider is 127.0.0.1 port 1 (refused at once), so the figure is start-up,
config, one failed connect and the report: what a cron job or a shell loop pays
per call. Beside it, in the same run, the floors it cannot go below: the bare
interpreter, the standard library's asyncio and ssl the probe needs, and pydantic
with one model built (config and results are pydantic models), and Debian's
check_smtp against the same port.

Bytecode is written to a temporary PYTHONPYCACHEPREFIX by a first run and read
by the measured ones, as from an installed package (pip compiles at install);
PYTHONDONTWRITEBYTECODE would otherwise make each run compile monitor's sources.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.clients import CHECK_SMTP, monitor_cli
from bench.report import aligned

TARGET_MS = 150.0
PYDANTIC_MODEL = "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)"


def _median_ms(argv: Sequence[str], env: dict[str, str], runs: int,
               expect: set[int]) -> float:
    times = []
    for _ in range(runs + 1):  # the first writes bytecode and warms the page cache
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in expect:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: "
                               f"{done.stderr.decode(errors='replace')[-300:]}")
    return statistics.median(times[1:]) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli-start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=11, help="measured runs each (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        config = Path(tmp) / "c.yaml"
        config.write_text("providers:\n  - {name: closed, host: 127.0.0.1, port: 1, "
                          "helo: t.test, tls: none}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        python = sys.executable
        rows = [
            ("python -c pass", [python, "-c", "pass"], {0}),
            ("python: import asyncio, ssl", [python, "-c", "import asyncio, ssl"], {0}),
            ("python: pydantic, one model", [python, "-c", PYDANTIC_MODEL], {0}),
            ("check_smtp -H 127.0.0.1 -p 1", [CHECK_SMTP, "-H", "127.0.0.1", "-p", "1"],
             {2}),  # CRITICAL: connection refused
            ("monitor probe (refused port)", monitor_cli(config, "closed"), {1}),
        ]
        measured = [(name, _median_ms(cmd, env, args.runs, expect))
                    for name, cmd, expect in rows]
    ours = measured[-1][1]
    print(f"whole process, median of {args.runs} runs after one warm-up; Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs; load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    print(aligned([["command", "ms"], *([name, f"{ms:.1f}"] for name, ms in measured)]))
    verdict = "met" if ours <= TARGET_MS else "missed"
    print(f"monitor probe: {ours:.0f} ms, target <= {TARGET_MS:.0f} ms: {verdict}")
    return 0
