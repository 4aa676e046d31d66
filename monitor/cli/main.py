"""The `monitor` parser, assembled from one module per command, and `main`.

Every command module registers its sub-parser and a `run(args) -> ExitCode`
(monitor/cli/command.py); `main` runs it and turns the errors every command shares
(bad config, bad arguments, a refused database, Ctrl-C) into one line and an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor.cli import check, config, demo, history, posture, probe, serve, webhook
from monitor.cli.command import Command, ExitCode, UsageError

DESCRIPTION = "The `monitor` command line. Exit codes: 0 success, 1 probe failure, " \
              "2 usage/config error."

# In `monitor --help` order. Each module's top imports only the standard library: the
# parser is built on every start, and `monitor probe` must not pay for the database,
# HTTP and DNS stacks of the others (start-up time is most of a CLI run).
COMMANDS: tuple[Command, ...] = (probe, config, serve, history, webhook, check, posture,
                                  demo)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="monitor", description=DESCRIPTION)
    commands = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return top


def _usage_error(exc: Exception) -> bool:
    """A bad config, key or schema: one line and exit 2, not a traceback."""
    from monitor.config import ConfigError

    if isinstance(exc, UsageError | ConfigError):
        return True
    # Only commands that opened the database raise these; importing the store just to
    # catch them would cost `monitor probe` the whole database stack at start-up.
    if "monitor.store" not in sys.modules:
        return False
    from monitor.store.errors import SchemaTooNew, SecretKeyError

    return isinstance(exc, SchemaTooNew | SecretKeyError)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return ExitCode(args.run(args))
    except Exception as exc:
        if not _usage_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
