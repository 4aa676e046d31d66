"""The loopback DNS server on a thread of its own, for commands that run their own loop
(`main([...])` calls asyncio.run)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.unit.checks.dnsserver import DnsServer, Records


@contextmanager
def dns_thread(records: Records) -> Iterator[DnsServer]:
    server = DnsServer(records)
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with server:
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10), "the DNS server did not start"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
