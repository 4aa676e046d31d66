"""`monitor serve`: the scheduler, receive poller, webhook outbox and HTTP API."""

from __future__ import annotations

import argparse

from monitor.cli.command import Commands, ExitCode, add_config_option


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the scheduler, outbox and HTTP API")
    add_config_option(serve)
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    from monitor.service.serve import serve

    serve(args.config)  # returns after SIGTERM, once in-flight work has finished
    return ExitCode.OK
