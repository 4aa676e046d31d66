"""`monitor demo [--once] [--interval S]`: the whole loop, locally (monitor/cli/demo_loop.py).

Ctrl-C: the first stops the demo cleanly, a second one quits at once; both exit 130.
"""

from __future__ import annotations

import argparse
import sys

from monitor.cli.command import Commands, ExitCode


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="run everything locally against a built-in sandbox")
    demo.add_argument("--once", action="store_true",
                      help="stop after one failure-and-recovery cycle")
    demo.add_argument("--interval", type=_interval, default=2.0,
                      help="seconds between probes (at least 1)")
    demo.set_defaults(run=run)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 1 <= value <= 3600:  # the config's bounds for a provider's interval
        raise argparse.ArgumentTypeError("must be between 1 and 3600 seconds")
    return value


def run(args: argparse.Namespace) -> ExitCode:
    import asyncio

    from monitor.cli.demo_loop import run_demo

    try:
        return asyncio.run(run_demo(once=args.once, interval=args.interval))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        print("Stopped.", file=sys.stderr)
        return ExitCode.INTERRUPTED
