"""The package layout holds: the probe and the receive side share only monitor/results.py
and monitor/network.py, and every SQL statement is in monitor/store/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

MONITOR = Path(__file__).parents[2] / "monitor"


def _loaded_by(module: str) -> set[str]:
    script = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(done.stdout.split())


def test_receive_does_not_reach_into_probe_nor_probe_into_receive() -> None:
    assert not {m for m in _loaded_by("monitor.receive") if m.startswith("monitor.probe")}
    assert not {m for m in _loaded_by("monitor.probe") if m.startswith("monitor.receive")}


def test_every_sql_statement_is_in_the_store() -> None:
    sql = re.compile(r"session\.(exec|execute|get|add|merge|delete)\(|\bselect\(|sa\.(update|"
                     r"delete|insert|text)\(")
    outside = [f"{path.relative_to(MONITOR)}:{n}" for path in MONITOR.rglob("*.py")
               if "store" not in path.relative_to(MONITOR).parts
               for n, line in enumerate(path.read_text().splitlines(), 1) if sql.search(line)]
    assert outside == []
