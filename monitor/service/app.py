"""The Starlette application and its lifespan: migrate, sync, schedule, drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from monitor.service.context import AppContext
from monitor.service.partition import leave
from monitor.service.probing import record_held
from monitor.service.scheduler import build_scheduler
from monitor.service.slots import run_slots
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import migrate, ping

log = logging.getLogger("monitor.service")

SHUTDOWN_GRACE = 20.0  # seconds in-flight probes and deliveries get to finish on SIGTERM

Job = Callable[[], Awaitable[object]]
Worker = Callable[[AppContext, asyncio.Event], Coroutine[Any, Any, None]]


async def _record_or_report_held(ctx: AppContext) -> None:
    """At a stop, results held through an outage are recorded, or counted in one line."""
    with contextlib.suppress(Exception):
        await record_held(ctx)
    if ctx.held:
        log.warning("probe results not recorded: the database is away at shutdown", extra={
            "action": "held_dropped", "count": len(ctx.held),
            "providers": sorted({h.provider for h in ctx.held})})


def create_app(ctx: AppContext, *, routes: Sequence[BaseRoute] = (),
               jobs: dict[str, tuple[Job, timedelta]] | None = None,
               workers: Sequence[Worker] = (), schedule: bool = True,
               exception_handlers: Mapping[Any, Any] | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        scheduler = build_scheduler(ctx, jobs) if schedule else None
        stopping = asyncio.Event()
        running = [*workers, run_slots] if schedule else workers
        worker_tasks = [asyncio.create_task(worker(ctx, stopping)) for worker in running]
        if scheduler is not None:
            scheduler.start()
        ctx.scheduler_running = True
        log.info("service started", extra={"action": "start", "replica": ctx.replica,
                                            "providers": len(ctx.config.providers)})
        try:
            yield
        finally:
            ctx.scheduler_running = False
            # Pause, not shut down, first: shutting the scheduler down cancels the jobs
            # it is running, and in-flight probes should finish and be recorded.
            if scheduler is not None:
                scheduler.pause()
            stopping.set()
            pending = [t for t in (*ctx.inflight, *worker_tasks) if not t.done()]
            if pending:
                _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
                for task in late:
                    task.cancel()
            if scheduler is not None:
                scheduler.shutdown(wait=False)
                with contextlib.suppress(Exception):  # a database away: the beat ages out
                    await leave(ctx)
            await _record_or_report_held(ctx)
            await ctx.close()
            log.info("service stopped", extra={"action": "stop", "replica": ctx.replica})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        problems = []
        try:
            await ping(ctx.engine)
        except Exception as exc:  # readiness reports, it never raises
            problems.append(f"database: {type(exc).__name__}")
        if not ctx.scheduler_running:
            problems.append("scheduler not running")
        status = 503 if problems else 200
        return JSONResponse({"status": "ok" if not problems else "unavailable",
                             "problems": problems}, status_code=status)

    base = [Route("/healthz", healthz), Route("/readyz", readyz)]
    app = Starlette(routes=[*base, *routes], lifespan=lifespan,
                    exception_handlers=dict(exception_handlers or {}))
    app.state.ctx = ctx
    return app
