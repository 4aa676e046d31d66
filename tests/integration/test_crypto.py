"""Subscription secrets at rest: nothing readable in the database files, private file
modes, key rotation, legacy plaintext rows, and the refusals (no key on PostgreSQL,
a key that opens nothing) as one line and exit 2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor import store
from monitor.config import Config
from monitor.ids import new_id
from monitor.service.context import AppContext
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store import db
from monitor.store.crypto import KEY_FILE, Cipher, SecretKeyError, load_cipher
from monitor.store.db import database_url, make_engine, migrate, sessions
from monitor.store.tables import SubscriptionRow

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROUTING_KEY = "R0UTINGKEY0123456789012345678901"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
HOOK = "https://ops.example.com/hooks/delivery?token=hunter2-in-the-url"
PLAINTEXTS = (SECRET, ROUTING_KEY, SLACK, HOOK, "hunter2")
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Modes must not depend on a careful umask: run with none at all."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def config() -> Config:
    return Config.model_validate({"subscriptions": [
        {"name": "hook", "kind": "generic", "url": HOOK, "secret": SECRET},
        {"name": "slack", "kind": "slack", "url": SLACK},
        {"name": "pd", "kind": "pagerduty", "routing_key": ROUTING_KEY},
    ]})


class _AnySecret:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("whsec_")


ANY_SECRET: Any = _AnySecret()  # a generated secret


def cipher(*keys: str) -> Cipher:
    return Cipher(list(keys))


async def raw_values(engine: AsyncEngine) -> list[str]:
    """Every url, routing_key and secret exactly as stored (no decrypting types)."""
    async with engine.connect() as connection:
        rows = (await connection.execute(sa.text(
            "SELECT url, routing_key, secrets FROM subscription ORDER BY name"))).all()
    out = []
    for url, routing_key, secrets in rows:
        out += [v for v in (url, routing_key) if v is not None]
        out += json.loads(secrets) if isinstance(secrets, str) else secrets
    return out


async def plaintexts(engine: AsyncEngine) -> dict[str, tuple[Any, ...]]:
    async with sessions(engine)() as session:
        rows = (await session.exec(sa.select(SubscriptionRow))).scalars().all()
    return {r.name: (r.url, r.routing_key, r.secrets) for r in rows}


# -- on disk ------------------------------------------------------------------------------


async def test_no_secret_url_or_routing_key_in_the_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    ctx = AppContext.create(config(), f"sqlite+aiosqlite:///{path}", cipher(KEY_A))
    try:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        # The engine is still open: what was just written sits in the WAL.
        wal = path.with_name("monitor.db-wal")
        assert wal.stat().st_size > 0
        files = [path, wal, path.with_name("monitor.db-shm")]
        for file in files:
            data = file.read_bytes()
            for plaintext in PLAINTEXTS:
                assert plaintext.encode() not in data, f"{plaintext} in {file.name}"
        # The service still reads, and so signs and sends with, the plaintext.
        assert await plaintexts(ctx.engine) == {
            "hook": (HOOK, None, [SECRET]), "slack": (SLACK, None, [ANY_SECRET]),
            "pd": (None, ROUTING_KEY, [ANY_SECRET])}
    finally:
        await ctx.close()
    # Checkpointed into the main file on close: still nothing readable, through sqlite3 too.
    data = path.read_bytes()
    assert not [p for p in PLAINTEXTS if p.encode() in data]
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT url, routing_key, secrets FROM subscription").fetchall()
    stored = [v for url, key, secrets in rows for v in (url, key, *json.loads(secrets)) if v]
    assert len(stored) == 6 and all(v.startswith("gAAAAA") for v in stored)


async def test_database_key_and_data_dir_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_SECRET_KEY")
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    url = database_url()
    ctx = AppContext.create(config(), url)  # the default: SQLite in ./data, a key file
    try:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        data = tmp_path / "data"
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert modes == {"monitor.db": 0o600, "monitor.db-wal": 0o600, "monitor.db-shm": 0o600,
                         KEY_FILE: 0o600}
    finally:
        await ctx.close()


async def test_files_left_open_by_an_older_version_are_narrowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    sqlite3.connect(data / "monitor.db").close()
    (data / "monitor.db").chmod(0o644)
    engine = make_engine(database_url())
    await engine.dispose()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "monitor.db").stat().st_mode) == 0o600


# -- the key ------------------------------------------------------------------------------


def test_sqlite_without_a_key_generates_one_beside_the_database_and_keeps_it(
    tmp_path: Path, open_umask: None
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
    first = load_cipher(url, env={})
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Fernet(key_file.read_text().strip())  # a Fernet key, one line
    token = first.encrypt(SECRET)
    assert load_cipher(url, env={}).decrypt(token) == SECRET, "the same key on the next start"
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE], "no temporary file left"
    key_file.chmod(0o644)  # restored from a backup, say
    load_cipher(url, env={})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_environment_key_wins_over_the_key_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
    token = load_cipher(url, env={"MONITOR_SECRET_KEY": KEY_A}).encrypt(SECRET)
    assert not (tmp_path / KEY_FILE).exists()
    assert Fernet(KEY_A).decrypt(token) == SECRET.encode()


def test_postgresql_without_a_key_is_refused() -> None:
    with pytest.raises(SecretKeyError) as caught:
        load_cipher("postgresql+asyncpg://monitor@db:5432/monitor", env={})
    message = str(caught.value)
    assert message.startswith("MONITOR_SECRET_KEY is not set: on postgresql every replica")
    assert "Fernet.generate_key()" in message and "\n" not in message
    with pytest.raises(SecretKeyError):  # blank is not a key either
        load_cipher("postgresql+asyncpg://db/monitor", env={"MONITOR_SECRET_KEY": " , "})
    assert load_cipher("postgresql+asyncpg://db/m", env={"MONITOR_SECRET_KEY": KEY_A})


@pytest.mark.parametrize("value, where", [
    ("hunter2", "MONITOR_SECRET_KEY is not a Fernet key"),
    (f"{KEY_B},hunter2", "key 2 of 2 in MONITOR_SECRET_KEY is not a Fernet key"),
])
def test_a_malformed_key_is_named_but_not_echoed(value: str, where: str) -> None:
    with pytest.raises(SecretKeyError) as caught:
        load_cipher("sqlite+aiosqlite:///x.db", env={"MONITOR_SECRET_KEY": value})
    assert str(caught.value).startswith(where)
    assert "hunter2" not in str(caught.value) and KEY_B not in str(caught.value)


def test_legacy_plaintext_reads_as_it_is_and_tokens_need_a_key() -> None:
    a = cipher(KEY_A)
    for legacy in (SECRET, ROUTING_KEY, SLACK, "", "gAAAAA"):
        assert a.decrypt(legacy) == legacy and not a.is_current(legacy)
    token = a.encrypt("x")
    assert a.is_current(token) and a.decrypt(token) == "x"
    with pytest.raises(SecretKeyError, match="MONITOR_SECRET_KEY=NEW,OLD"):
        cipher(KEY_B).decrypt(token)


# -- rotation, wrong keys, legacy rows ------------------------------------------------------


async def write_subscriptions(url: str, keys: str) -> None:
    ctx = AppContext.create(config(), url, cipher(*keys.split(",")))
    try:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
    finally:
        await ctx.close()


async def test_rotation_old_key_still_decrypts_and_rows_move_to_the_new_one(url: str) -> None:
    await write_subscriptions(url, KEY_A)
    engine = make_engine(url, cipher(KEY_B, KEY_A))
    try:
        before = await plaintexts(engine)
        assert before["hook"] == (HOOK, None, [SECRET])
        stored = await raw_values(engine)
        assert all(Fernet(KEY_A).decrypt(v.encode()) for v in stored)
        async with sessions(engine)() as session, session.begin():
            assert await store.subscriptions.reencrypt_subscriptions(session) == 3
        async with sessions(engine)() as session, session.begin():
            assert await store.subscriptions.reencrypt_subscriptions(session) == 0, "done once"
        rotated = await raw_values(engine)
        assert len(rotated) == len(stored) and not set(rotated) & set(stored)
        assert all(Fernet(KEY_B).decrypt(v.encode()) for v in rotated)
    finally:
        await engine.dispose()
    engine = make_engine(url, cipher(KEY_B))  # the old key can go now
    try:
        assert await plaintexts(engine) == before
    finally:
        await engine.dispose()


async def test_a_key_that_opens_nothing_is_a_clear_error(url: str) -> None:
    await write_subscriptions(url, KEY_A)
    engine = make_engine(url, cipher(KEY_B))
    try:
        with pytest.raises(SecretKeyError, match="does not decrypt with MONITOR_SECRET_KEY"):
            await plaintexts(engine)
        async with sessions(engine)() as session:
            with pytest.raises(SecretKeyError):
                await store.subscriptions.reencrypt_subscriptions(session)
    finally:
        await engine.dispose()


async def at_revision(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: sa.Connection) -> None:
        config = db._alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def test_migration_encrypts_plaintext_rows_and_downgrade_restores_them(url: str) -> None:
    engine = make_engine(url, cipher(KEY_A))
    try:
        await at_revision(engine, "0001")  # the schema before encryption, and its rows
        async with engine.begin() as connection:
            for name, kind, hook, key, secrets in (
                    ("hook", "generic", HOOK, None, [SECRET, "whsec_old"]),
                    ("pd", "pagerduty", None, ROUTING_KEY, [])):
                await connection.execute(sa.text(
                    "INSERT INTO subscription (id, name, kind, url, secrets, routing_key, "
                    "events, providers, enabled, source, created_at) VALUES (:id, :name, "
                    ":kind, :url, :secrets, :key, '[\"*\"]', '[\"*\"]', true, 'api', :now)"),
                    {"id": new_id(), "name": name, "kind": kind, "url": hook, "key": key,
                     "secrets": json.dumps(secrets), "now": NOW})
        legacy = await raw_values(engine)
        assert legacy == [HOOK, SECRET, "whsec_old", ROUTING_KEY]
        # Read before migrating, a legacy row is still the plaintext it was.
        assert (await plaintexts(engine))["hook"] == (HOOK, None, [SECRET, "whsec_old"])

        await migrate(engine)
        encrypted = await raw_values(engine)
        assert len(encrypted) == 4 and not set(encrypted) & set(legacy)
        assert all(Cipher([KEY_A]).is_current(v) for v in encrypted)
        assert await plaintexts(engine) == {"hook": (HOOK, None, [SECRET, "whsec_old"]),
                                            "pd": (None, ROUTING_KEY, [])}

        await at_revision(engine, "0001", down=True)
        assert await raw_values(engine) == legacy
    finally:
        await engine.dispose()


async def test_migrated_sqlite_file_keeps_no_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}", cipher(KEY_A))
    try:
        await at_revision(engine, "0001")
    finally:
        await engine.dispose()
    # An older version's rows, in plaintext: several to a page, where a rewritten cell
    # leaves its old bytes behind unless SQLite is told to zero them.
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        for i in range(5):
            connection.execute(
                "INSERT INTO subscription (id, name, kind, url, secrets, routing_key, events, "
                "providers, enabled, source, created_at) VALUES "
                "(?, ?, 'generic', ?, ?, ?, '[\"*\"]', '[\"*\"]', 1, 'api', ?)",
                (f"s{i}", f"hook{i}", f"{HOOK}{i}", json.dumps([f"{SECRET}{i}"]),
                 f"{ROUTING_KEY}{i}", NOW.isoformat()))
    engine = make_engine(f"sqlite+aiosqlite:///{path}", cipher(KEY_A))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    for file in (path, path.with_name("monitor.db-wal"), path.with_name("monitor.db-shm")):
        data = file.read_bytes() if file.exists() else b""
        assert not [p for p in (HOOK, SECRET, ROUTING_KEY) if p.encode() in data], file.name


# -- `monitor serve` refuses, one line, exit 2 ----------------------------------------------


async def serve(tmp_path: Path, **env: str) -> tuple[int, str]:
    config = tmp_path / "monitor.yaml"
    config.write_text("providers: []\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "serve", "--config", str(config),
        env={"PATH": os.environ["PATH"], "MONITOR_LISTEN": "127.0.0.1:0", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_serve_on_postgresql_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    code, err = await serve(tmp_path, MONITOR_DATABASE_URL="postgresql+asyncpg://nobody@db/m")
    assert code == 2
    assert err.startswith("error: MONITOR_SECRET_KEY is not set: on postgresql")
    assert err.count("\n") == 1, err  # nothing else: no traceback, no port opened


async def test_serve_with_a_key_that_opens_nothing_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
    await write_subscriptions(url, KEY_A)
    code, err = await serve(tmp_path, MONITOR_DATABASE_URL=url, MONITOR_SECRET_KEY=KEY_B)
    assert code == 2
    *logs, last = err.splitlines()  # the migration logs its start, then one error line
    assert last.startswith("error: a stored subscription secret does not decrypt with "
                           "MONITOR_SECRET_KEY"), err
    assert "Traceback" not in err and all(line.startswith("{") for line in logs), err
