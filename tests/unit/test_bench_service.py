"""bench record and bench cli-start: they measure what they say, and refuse a failed run."""

from __future__ import annotations

import os
import sys

import pytest
from cryptography.fernet import Fernet

from bench import cli_start, record


def test_a_timed_command_that_exits_unexpectedly_is_not_timed() -> None:
    failing = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="exited 3: boom"):
        cli_start._median_ms(failing, dict(os.environ), 1, {0})
    assert cli_start._median_ms([sys.executable, "-c", "pass"], dict(os.environ), 1, {0}) > 0


def test_record_commits_alone_with_one_caller_and_in_groups_with_more(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The bench sets a key if none is set; the other tests must not inherit it.
    monkeypatch.setenv("MONITOR_SECRET_KEY", Fernet.generate_key().decode())
    assert record.main(["--runs", "40", "--callers", "1,8", "--databases", "sqlite"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {cells[1]: cells for cells in (
        [c.strip() for c in line.split("|")] for line in lines if line.startswith("sqlite"))}
    assert set(rows) == {"1", "8"}
    assert float(rows["1"][4]) == 1.0  # each awaited alone: one run a commit
    assert float(rows["8"][4]) > 1.5  # eight in flight: the writer grouped them
