"""`monitor config validate [FILE]`: load a config file as `serve` would, and say so."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.cli.command import Commands, ExitCode


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="config file tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="check a config file and exit")
    validate.add_argument("file", nargs="?", type=Path, default=None)
    validate.set_defaults(run=run_validate)


def run_validate(args: argparse.Namespace) -> ExitCode:
    """A bad file raises ConfigError, which `main` prints (file: key: problem) as exit 2."""
    from monitor.config import default_config_path, load_config

    config = load_config(args.file)
    source = args.file or default_config_path()
    print(f"{source}: OK ({len(config.providers)} providers, {len(config.mailboxes)} mailboxes, "
          f"{len(config.subscriptions)} subscriptions)")
    return ExitCode.OK
