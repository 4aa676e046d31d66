"""Waiting on a condition, with a bound: never sleeping-and-hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(condition: Callable[[], object], what: str, within: float = 30.0,
                every: float = 0.02) -> None:
    """Return once `condition()` is true; fail the test naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {within:g}s waiting for {what}"
        await asyncio.sleep(every)


async def eventually(check: Callable[[], Awaitable[T | None]], what: str,
                     within: float = 30.0, every: float = 0.05) -> T:
    """`until` for a condition that must be awaited (a query, a request): its first
    true-ish result, or the test fails naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {within:g}s waiting for {what}"
        await asyncio.sleep(every)
