"""`monitor serve`: the scheduler, receive poller, outbox worker and HTTP API in one process."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from monitor import store
from monitor.api import EXCEPTION_HANDLERS, Tokens, api_routes
from monitor.config import load_config
from monitor.receive import ReceiveOptions
from monitor.receive.intake import inbound_routes
from monitor.service.app import create_app
from monitor.service.checking import resume_abandoned
from monitor.service.context import AppContext
from monitor.service.inbound import DatabaseInbound
from monitor.service.logs import setup_logging
from monitor.service.outbox import outbox_worker
from monitor.service.receiving import poll_receive
from monitor.service.scheduler import CHECKS_EVERY, RECEIVE_EVERY
from monitor.status.routes import status_routes
from monitor.store.crypto import Cipher, load_cipher
from monitor.store.db import database_url, make_engine, migrate, sessions

log = logging.getLogger("monitor.service")


def listen_address() -> tuple[str, int]:
    value = os.environ.get("MONITOR_LISTEN", "127.0.0.1:8080")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"MONITOR_LISTEN must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


async def prepare_database(url: str, cipher: Cipher) -> None:
    """Migrate, and bring every stored secret under the newest key, before serving.

    A too-new schema (SchemaTooNew) or a key that opens nothing stored
    (SecretKeyError) fails fast, as one line, before any port opens.
    """
    engine = make_engine(url, cipher)
    try:
        await migrate(engine)
        async with sessions(engine)() as session, session.begin():
            changed = await store.subscriptions.reencrypt_subscriptions(session)
        if changed:
            log.info("subscription secrets re-encrypted under the newest key",
                     extra={"action": "reencrypt", "subscriptions": changed})
    finally:
        await engine.dispose()


def receive_options(ctx: AppContext, options: ReceiveOptions | None = None) -> ReceiveOptions:
    """The service's receive options: posted mail in the database unless `options`
    names another store, so every replica's receive job sees every replica's posts."""
    options = options or ReceiveOptions(
        data_dir=Path(os.environ.get("MONITOR_DATA_DIR", "data")))
    if options.inbound_store is None:
        options = dataclasses.replace(options, inbound_store=DatabaseInbound(ctx))
    return options


def service_app(ctx: AppContext, tokens: Tokens | None = None,
                options: ReceiveOptions | None = None) -> Starlette:
    """The full service: probes, receive poller and outbox on the scheduler, plus the API."""
    tokens = Tokens.from_env() if tokens is None else tokens
    options = receive_options(ctx, options)

    async def checks_job() -> int:
        return await resume_abandoned(ctx, options)

    async def receive_job() -> int:
        return await poll_receive(ctx, options)

    return create_app(ctx, routes=[*api_routes(ctx, tokens, options),
                                   *inbound_routes(ctx.config, options.data_dir,
                                                   store=options.inbound_store),
                                   *status_routes(ctx, tokens)],
                      jobs={"receive": (receive_job, RECEIVE_EVERY),
                            "checks": (checks_job, CHECKS_EVERY)},
                      workers=[outbox_worker],
                      exception_handlers=EXCEPTION_HANDLERS)


def serve(config_path: Path | None) -> None:
    setup_logging(os.environ.get("MONITOR_LOG_LEVEL", "INFO"))
    config = load_config(config_path)
    try:
        host, port = listen_address()
        tokens = Tokens.from_env()  # a bad token list stops the start, before any port opens
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    url = database_url()
    # PostgreSQL without MONITOR_SECRET_KEY raises SecretKeyError: the command line
    # prints it and exits 2 (replicas must share the key; none may make its own).
    cipher = load_cipher(url)
    asyncio.run(prepare_database(url, cipher))
    ctx = AppContext.create(config, url, cipher)
    app = service_app(ctx, tokens)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None,
                                           lifespan="on", access_log=False))
    # uvicorn drains, then re-raises the signal it caught; SIGTERM is a requested stop
    # (Kubernetes, docker stop), so once drained we let it land here and exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # What exists now (modules, the config's thousands of models, the app) lives as long
    # as the process: out of the cyclic collector's sight, full collections don't walk it
    # again and again at 5,000 providers (issue 12).
    gc.freeze()
    server.run()
