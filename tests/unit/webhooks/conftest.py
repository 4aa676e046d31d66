"""Fixtures of the webhook tests: the loopback receiver (receiver.py) and a shared client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.webhooks.sender import make_client
from tests.unit.webhooks.receiver import Receiver, receiver


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with receiver() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as shared:
        yield shared
