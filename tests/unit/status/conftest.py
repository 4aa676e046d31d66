"""A seeded database behind the full service app (routes only, no scheduler), reached
in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from monitor.api import Tokens
from monitor.receive import ReceiveOptions
from monitor.service.context import AppContext
from monitor.service.serve import service_app
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import migrate
from tests.conftest import TEST_SECRET_KEY
from tests.unit.status.seed import NOW, config, seed_history

READ = "status-read-token-0123456789"
ADMIN = "status-admin-token-0123456789"
TOKENS = Tokens.parse(f"{READ}:read,{ADMIN}:admin", "test")
PROVIDERS = ("good", "broken", "junky")

Site = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One seeded SQLite file for the session; every test serves a copy of it."""
    import asyncio

    path = tmp_path_factory.mktemp("status") / "seeded.db"

    async def seed() -> None:
        ctx = AppContext.create(config(*PROVIDERS), f"sqlite+aiosqlite:///{path}")
        try:
            await migrate(ctx.engine)
            await sync_config_subscriptions(ctx)
            await seed_history(ctx)
        finally:
            await ctx.close()

    with pytest.MonkeyPatch.context() as env:  # the autouse key fixture is per test
        env.setenv("MONITOR_SECRET_KEY", TEST_SECRET_KEY)
        asyncio.run(seed())
    return str(path)


@pytest.fixture
def site(seeded_db: str, tmp_path: Path) -> Site:
    """`async with site(status_page="token") as client:` a client of the seeded service;
    `extra` providers are configured but have no history."""
    import itertools
    import shutil

    copies = itertools.count()

    @asynccontextmanager
    async def open_site(extra: tuple[str, ...] = (),
                        **settings: str) -> AsyncIterator[httpx.AsyncClient]:
        copy = tmp_path / f"db-{next(copies)}.db"
        shutil.copy(seeded_db, copy)
        ctx = AppContext.create(config(*PROVIDERS, *extra, **settings),
                                f"sqlite+aiosqlite:///{copy}")
        ctx.clock = lambda: NOW
        app = service_app(ctx, TOKENS, ReceiveOptions(data_dir=tmp_path))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://status.test") as client:
                yield client
        finally:
            await ctx.close()

    return open_site
