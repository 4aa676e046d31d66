"""`monitor events` and `monitor status`: read what the service recorded."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from monitor.cli.command import Commands, ExitCode

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="print recent events from the database")
    events.add_argument("--provider", default=None)
    events.add_argument("--type", dest="types", action="append", default=[],
                        help="event type (repeatable)")
    events.add_argument("--limit", type=int, default=20)
    events.add_argument("--json", action="store_true")
    events.set_defaults(run=run_events)

    status = commands.add_parser("status", help="print each provider's current state")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=run_status)


def run_events(args: argparse.Namespace) -> ExitCode:
    async def show(session: AsyncSession) -> None:
        from monitor import store
        from monitor.cli.terminal import terminal_safe
        from monitor.events.summary import summary
        rows = await store.events.list_events(session, provider=args.provider, types=args.types,
                                         limit=args.limit)
        if args.json:
            print(json.dumps([{"id": r.id, "type": r.type, "provider": r.provider,
                               "timestamp": r.timestamp.isoformat(), "run_id": r.run_id,
                               "data": r.data} for r in rows], indent=2))
            return
        for row in reversed(rows):
            # Domain events (domain.*) have no provider: the domain stands in its column.
            who = row.provider or str(row.data.get("domain") or "-")
            print(terminal_safe(f"{row.timestamp:%Y-%m-%d %H:%M:%S}  {row.type:28} "
                                f"{who:20} {summary(row.type, row.data)}"))

    return _with_database(show)


def run_status(args: argparse.Namespace) -> ExitCode:
    async def show(session: AsyncSession) -> None:
        from monitor import store
        from monitor.cli.terminal import terminal_safe
        states = await store.runs.states(session)
        if args.json:
            print(json.dumps({r.provider: r.state for r in states}, indent=2))
            return
        for row in states:
            state = row.state
            print(terminal_safe(f"{row.provider:24} {state.get('health', '?'):8} "
                                f"delivery={state.get('delivery', '?'):8} "
                                f"failures={state.get('consecutive_failures', 0)} "
                                f"updated {row.updated_at:%Y-%m-%d %H:%M:%S}"))

    return _with_database(show)


def _with_database(show: Callable[[AsyncSession], Awaitable[None]]) -> ExitCode:
    """Open (and migrate) the database of $MONITOR_DATABASE_URL, run `show` in a session."""
    import asyncio

    from monitor.store.db import database_url, make_engine, migrate, sessions

    async def main() -> None:
        engine = make_engine(database_url())
        try:
            await migrate(engine)
            async with sessions(engine)() as session:
                await show(session)
        finally:
            await engine.dispose()

    asyncio.run(main())
    return ExitCode.OK
