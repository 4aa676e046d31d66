"""Slot claims, provider state and probe runs: what the scheduler and the API read and write.

Functions take an AsyncSession and leave transactions to the caller unless the
docstring says "Commits"; the recording path's take a Session and run in the
writer's transaction (monitor.store.writer), or in an AsyncSession's run_sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.events.state import ProviderState, brief
from monitor.probe.result import ProbeResult
from monitor.probe.summary import RunSummary
from monitor.store.db import dialect, insert_ignoring
from monitor.store.tables import (
    EncodedJSON,
    ProviderStateRow,
    RunRow,
    SlotClaimRow,
)


def claim_slot(session: Session, provider: str, slot: int, replica: str,
               now: datetime, lease: timedelta) -> bool:
    """Insert (provider, slot); exactly one replica succeeds (its own transaction: the
    claim must commit before the probe runs).

    One INSERT ... ON CONFLICT DO NOTHING, not an ORM add that fails on the key: the
    loser learns it from the row count, with no exception and no rollback to pay for.
    """
    result = session.connection().execute(_CLAIM[dialect(session)], {
        "provider": provider, "slot": slot, "claimed_by": replica, "claimed_at": now,
        "lease_until": now + lease, "done": False})
    return bool(result.rowcount)


async def open_claims(session: AsyncSession, now: datetime, since: datetime, *,
                      limit: int = 100) -> Sequence[SlotClaimRow]:
    """Claims made since `since` whose lease ran out with their run not recorded: the
    claimant died. Older ones are past their slot and stay as they are (retention)."""
    return (await session.exec(select(SlotClaimRow)
                               .where(col(SlotClaimRow.done).is_(False))
                               .where(col(SlotClaimRow.claimed_at) >= since)
                               .where(col(SlotClaimRow.lease_until) < now)
                               .order_by(col(SlotClaimRow.lease_until)).limit(limit))).all()


async def take_over_slot(session: AsyncSession, claim: SlotClaimRow, replica: str,
                         now: datetime, lease: timedelta) -> bool:
    """Move a dead claimant's expired claim to `replica`; one taker wins. Commits."""
    result = await session.exec(
        sa.update(SlotClaimRow)
        .where(col(SlotClaimRow.provider) == claim.provider)
        .where(col(SlotClaimRow.slot) == claim.slot)
        .where(col(SlotClaimRow.claimed_by) == claim.claimed_by)
        .where(col(SlotClaimRow.done).is_(False))
        .where(col(SlotClaimRow.lease_until) < now)
        .values(claimed_by=replica, lease_until=now + lease))
    await session.commit()
    return bool(result.rowcount == 1)


def finish_slot(session: Session, provider: str, slot: int, replica: str) -> bool:
    """Mark the slot's run recorded (caller's transaction); False if it was taken over."""
    result = session.connection().execute(_FINISH, {
        "key_provider": provider, "key_slot": slot, "key_replica": replica})
    return bool(result.rowcount == 1)


def load_state(session: Session, provider: str, now: datetime) -> ProviderState:
    """The stored state, locked for this transaction.

    The row is created first if missing (insert … on conflict do nothing), so two
    writers of a provider's first run serialise on it instead of both inserting.
    On SQLite the insert takes the database write lock for the transaction.
    """
    kind = dialect(session)
    connection = session.connection()
    connection.execute(_STATE_ROW[kind], {"provider": provider, "state": {}, "updated_at": now})
    stored = connection.execute(_STATE_OF[kind], {"key_provider": provider}).scalar()
    return ProviderState.model_validate(stored) if stored else ProviderState()


def save_state(session: Session, provider: str, state: ProviderState,
               now: datetime, last: RunSummary | None = None) -> None:
    """`last`: the run this state follows (None: the state changed without a run).

    The row's `summary` is the provider's list entry, kept ready: the state in brief
    and the last run in brief, so listing thousands parses nothing.
    """
    connection = session.connection()
    if last is None:
        kept = connection.execute(_SUMMARY_OF, {"key_provider": provider}).scalar()
        previous = (kept or {}).get("last_run")
    else:
        previous = last.model_dump(mode="json")
    values = {"state": state.model_dump(mode="json"),
              "summary": {**brief(state), "last_run": previous},
              "last_run_id": state.last_run_id, "updated_at": now}
    if not connection.execute(_SAVE, {"key_provider": provider, **values}).rowcount:
        connection.execute(_STATES.insert(), {"provider": provider, **values})


def add_run(session: Session, result: ProbeResult, slot: int | None = None) -> None:
    session.connection().execute(_ADD_RUN, {
        "slot": slot, "id": result.run_id, "provider": result.provider,
        "started_at": result.started_at, "duration_ms": result.duration_ms, "ok": result.ok,
        "failed_step": result.failed_step.value if result.failed_step else None,
        "failure_class": result.failure_class.value if result.failure_class else None,
        "result": result.model_dump_json()})


# The recording path's statements, built once: a statement reused keeps its compiled
# form and cache key, where building one per run cost more than running it (issue 12's
# profile). Parameters come at execution; `key_` ones select the row.
_CLAIMS: sa.Table = SlotClaimRow.__table__  # type: ignore[attr-defined]
_STATES: sa.Table = ProviderStateRow.__table__  # type: ignore[attr-defined]
_RUNS: sa.Table = RunRow.__table__  # type: ignore[attr-defined]
_CLAIM = insert_ignoring(_CLAIMS)
_ADD_RUN = _RUNS.insert().values(result=sa.bindparam("result", type_=EncodedJSON()))
_FINISH = (_CLAIMS.update()
           .where(_CLAIMS.c.provider == sa.bindparam("key_provider"))
           .where(_CLAIMS.c.slot == sa.bindparam("key_slot"))
           .where(_CLAIMS.c.claimed_by == sa.bindparam("key_replica"))
           .where(_CLAIMS.c.done.is_(False))  # recorded once, whoever ran it
           .values(done=True))
_STATE_ROW = insert_ignoring(_STATES)
_THIS_STATE = _STATES.c.provider == sa.bindparam("key_provider")
# SQLite has no row locks: the insert above took the database's write lock.
_STATE_OF = {"sqlite": sa.select(_STATES.c.state).where(_THIS_STATE),
             "postgresql": sa.select(_STATES.c.state).where(_THIS_STATE).with_for_update()}
_SUMMARY_OF = sa.select(_STATES.c.summary).where(_THIS_STATE)
_SAVE = _STATES.update().where(_THIS_STATE)


async def recent_runs(session: AsyncSession, provider: str, *, limit: int = 50,
                      before: str | None = None) -> Sequence[RunRow]:
    query = select(RunRow).where(RunRow.provider == provider)
    if before:
        query = query.where(col(RunRow.id) < before)
    return (await session.exec(query.order_by(col(RunRow.id).desc()).limit(limit))).all()


async def last_runs(session: AsyncSession) -> dict[str, RunRow]:
    """Each provider's newest run, in one query (the state row points at it)."""
    rows = (await session.exec(select(RunRow).join(
        ProviderStateRow, col(ProviderStateRow.last_run_id) == col(RunRow.id)))).all()
    return {row.provider: row for row in rows}


async def last_run(session: AsyncSession, provider: str) -> RunRow | None:
    runs = await recent_runs(session, provider, limit=1)
    return runs[0] if runs else None


async def states(session: AsyncSession) -> Sequence[ProviderStateRow]:
    return (await session.exec(select(ProviderStateRow).order_by(
        col(ProviderStateRow.provider)))).all()


async def listings(session: AsyncSession, providers: Sequence[str]) -> dict[str, str]:
    """The stored list entries (`save_state`) of `providers`, one page, by primary key,
    as JSON text: the list splices them into its answer without parsing them."""
    if not providers:
        return {}
    table = ProviderStateRow.__table__  # type: ignore[attr-defined]
    connection = await session.connection()
    rows = (await connection.execute(
        sa.select(table.c.provider, sa.cast(table.c.summary, sa.Text))
        .where(table.c.provider.in_(providers))
        .where(table.c.summary.is_not(None)))).all()
    return {provider: text for provider, text in rows if text and text != "null"}


async def state(session: AsyncSession, provider: str) -> ProviderStateRow | None:
    return await session.get(ProviderStateRow, provider)


async def durations(session: AsyncSession, provider: str,
                    since: datetime) -> Sequence[tuple[datetime, float, bool]]:
    """(started_at, duration_ms, ok) of a provider's runs since `since`, oldest first:
    the columns a latency chart needs, without the result documents."""
    rows = (await session.exec(select(RunRow.started_at, RunRow.duration_ms, RunRow.ok)
                               .where(RunRow.provider == provider)
                               .where(col(RunRow.started_at) >= since)
                               .order_by(col(RunRow.started_at)))).all()
    return [(at, ms, ok) for at, ms, ok in rows]
