"""What every command module shares: its shape, its exit codes, its usage errors.

A command is a module in `monitor/cli/` with two functions (the `Command` protocol):
`register(commands)` adds its sub-parser and sets `run` on it, and `run(args)` does
the work and returns an `ExitCode`. `register` runs for every invocation, so a command
module imports only the standard library at its top; the database, HTTP, DNS and SMTP
stacks are imported inside `run` (start-up time is most of a short CLI run).
"""

from __future__ import annotations

import argparse
from enum import IntEnum
from pathlib import Path
from typing import Protocol

Commands = argparse._SubParsersAction  # what `add_subparsers()` returns

CONFIG_HELP = "config file (default: $MONITOR_CONFIG or config/monitor.yaml)"


class ExitCode(IntEnum):
    """The exit status of every command (README, Commands)."""

    OK = 0  # probe ok, check passed, webhook valid, config valid
    FAILED = 1  # probe failed, check failed, webhook invalid
    USAGE = 2  # bad arguments or config, an unfinished check (argparse exits 2 too)
    INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class UsageError(Exception):
    """The caller's input is wrong: `main` prints `error: <message>` and exits 2."""


class Command(Protocol):
    def register(self, commands: Commands[argparse.ArgumentParser]) -> None: ...


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)
