"""Waiting on a condition, with a bound: never sleeping-and-hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], object], what: str, within: float = 30.0,
                every: float = 0.02) -> None:
    """Return once `condition()` is true; fail the test naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {within:g}s waiting for {what}"
        await asyncio.sleep(every)


async def eventually(check: Callable[[], Awaitable[object]], what: str, within: float = 30.0,
                     every: float = 0.05) -> None:
    """`until` for a condition that must be awaited (a database read)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {within:g}s waiting for {what}"
        await asyncio.sleep(every)
