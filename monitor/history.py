"""`monitor events` and `monitor status`: read what the service recorded."""

from __future__ import annotations

import argparse
import json

from monitor.render import terminal_safe
from monitor.store import queries
from monitor.store.db import database_url, make_engine, migrate, sessions


async def main(args: argparse.Namespace) -> int:
    engine = make_engine(database_url())
    try:
        await migrate(engine)
        async with sessions(engine)() as session:
            if args.command == "events":
                rows = await queries.list_events(session, provider=args.provider,
                                                 types=args.types, limit=args.limit)
                if args.json:
                    print(json.dumps([{"id": r.id, "type": r.type, "provider": r.provider,
                                       "timestamp": r.timestamp.isoformat(), "run_id": r.run_id,
                                       "data": r.data} for r in rows], indent=2))
                for row in [] if args.json else reversed(rows):
                    detail = _summary(row.data)
                    print(terminal_safe(f"{row.timestamp:%Y-%m-%d %H:%M:%S}  {row.type:28} "
                                        f"{row.provider or '-':20} {detail}"))
            else:
                states = await queries.states(session)
                if args.json:
                    print(json.dumps({r.provider: r.state for r in states}, indent=2))
                for state_row in [] if args.json else states:
                    state = state_row.state
                    print(f"{state_row.provider:24} {state.get('health', '?'):8} "
                          f"delivery={state.get('delivery', '?'):8} "
                          f"failures={state.get('consecutive_failures', 0)} "
                          f"updated {state_row.updated_at:%Y-%m-%d %H:%M:%S}")
    finally:
        await engine.dispose()
    return 0


def _summary(data: dict[str, object]) -> str:
    if "step" in data and "code" in data:
        return f"{data.get('step')} {data.get('code') or ''} {data.get('enhanced_code') or ''} " \
               f"({data.get('class')})".replace("  ", " ")
    if "previous" in data:
        return f"{data.get('step')}: {data.get('previous')} -> {data.get('current')}"
    return ", ".join(f"{k}={v}" for k, v in data.items() if k in ("threshold_days", "added",
                                                                   "removed", "duration_ms"))
