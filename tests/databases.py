"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database.

PostgreSQL runs on 127.0.0.1:5432 with trust auth (this machine and CI); each
test gets its own database, created from `postgres` and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

PG_HOST = os.environ.get("MONITOR_TEST_PG", "postgres@127.0.0.1:5432")


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"dm_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"postgresql://{PG_HOST}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://{PG_HOST}/{name}"
    finally:
        admin = await asyncpg.connect(f"postgresql://{PG_HOST}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def throwaway_database(kind: str, directory: Path) -> AsyncIterator[str]:
    """The URL of a throwaway database: "sqlite", a file in `directory`; "postgresql",
    a fresh database (`postgres_database`). For fixtures parametrized on both."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'db'}"
        return
    async with postgres_database() as url:
        yield url
