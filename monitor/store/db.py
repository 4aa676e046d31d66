"""Database engine, sessions and migrations.

SQLite (aiosqlite, WAL) under ./data by default; PostgreSQL (asyncpg) when
MONITOR_DATABASE_URL says so. The service migrates on start — under an
advisory lock on PostgreSQL, so replicas starting together don't race — and
refuses to run against a schema newer than it knows.

Every engine carries the cipher of its encrypted columns (monitor.store.crypto).
An SQLite database is private to the service: its file (and so its WAL and
shared-memory files, which SQLite creates with the database's mode) is 0600, and
the default ./data directory 0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.crypto import Cipher, bind_cipher, cipher_for, load_cipher
from monitor.store.errors import SchemaTooNew, SecretKeyError

__all__ = ["SchemaTooNew", "SecretKeyError", "database_url", "make_engine", "migrate",
           "sessions"]

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6D6F6E69  # "moni": pg_advisory_xact_lock key for migrations


def database_url(env: Mapping[str, str] | None = None) -> str:
    environ = os.environ if env is None else env
    url = environ.get("MONITOR_DATABASE_URL")
    if url:
        return url
    data = Path("data").absolute()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owner_only(data, 0o700)  # a ./data made by an older version is 0755
    return f"sqlite+aiosqlite:///{data / 'monitor.db'}"


def _owner_only(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):  # not ours to change (a mounted volume): leave it
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(mode)


def _private_sqlite_file(url: str) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 & ~umask).

    SQLite gives the -wal and -shm files the mode of the database file, so they
    follow; files left by an older version are narrowed too.
    """
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    with contextlib.suppress(FileExistsError, FileNotFoundError):  # no dir: SQLite says so
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        _owner_only(file, 0o600)


def make_engine(url: str, cipher: Cipher | None = None) -> AsyncEngine:
    """An engine for `url`, its encrypted columns using `cipher`.

    Without one, the cipher is loaded from the environment (`load_cipher`), which
    raises SecretKeyError on PostgreSQL without MONITOR_SECRET_KEY.
    """
    if cipher is None:
        cipher = load_cipher(url)
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        # hide_parameters: a database error must not carry secrets (webhook secrets,
        # routing keys, Slack URLs) into an exception message and from there into a log.
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                                     hide_parameters=True)
    bind_cipher(engine.sync_engine.dialect, cipher)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) proceed while the scheduler writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_writer_engine(engine: AsyncEngine) -> sa.Engine:
    """A synchronous engine on `engine`'s SQLite file, with its pragmas and its cipher,
    for the one thread that runs whole write transactions (monitor.store.writer)."""
    url = engine.url.set(drivername="sqlite")
    # check_same_thread off: the pool is disposed from the event loop's thread; every
    # statement runs in the writer's one thread.
    writer = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                              hide_parameters=True, pool_size=1, max_overflow=0)
    sa.event.listen(writer, "connect", _sqlite_pragmas)
    bind_cipher(writer.dialect, cipher_for(engine.sync_engine.dialect))
    return writer


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers (readiness)."""
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))


async def insert_unique(session: AsyncSession, row: object) -> bool:
    """Insert and commit; False (rolled back) when a unique key says another got there
    first: how replicas decide a slot, and how two racing creates of one name settle."""
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


def is_postgres(session: AsyncSession | Session) -> bool:
    """Where the SQL differs: SKIP LOCKED, ON CONFLICT upserts."""
    return session.get_bind().dialect.name == "postgresql"


def dialect(session: AsyncSession | Session) -> str:
    """"postgresql" or "sqlite": the key of a statement built once per dialect."""
    return "postgresql" if is_postgres(session) else "sqlite"


def insert_ignoring(table: sa.Table) -> dict[str, sa.Insert]:
    """INSERT … ON CONFLICT DO NOTHING into `table`, built once per dialect (`dialect`);
    the values come at execution."""
    return {"sqlite": sqlite_insert(table).on_conflict_do_nothing(),
            "postgresql": pg_insert(table).on_conflict_do_nothing()}


def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def _alembic_config(connection: sa.Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": _MIGRATION_LOCK})
    config = _alembic_config(connection)
    known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = [rev for rev in current if rev not in known]
    if unknown:
        raise SchemaTooNew(
            f"the database schema is at revision {', '.join(unknown)}, which this version "
            f"of Delivery Monitor does not know (it knows up to {head_revision()}): "
            "upgrade Delivery Monitor, or point MONITOR_DATABASE_URL at another database")
    command.upgrade(config, "head")


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    return script.get_current_head() or "base"


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to head; raise SchemaTooNew if it is ahead of us."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: sa.Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)
