"""Subscriptions at rest: their secrets re-encrypted under the newest key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import load_only
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.crypto import cipher_for
from monitor.store.db import insert_unique
from monitor.store.tables import DeliveryAttemptRow, DeliveryRow, SubscriptionRow

# The subscription columns as stored (Fernet tokens, or legacy plaintext), without the
# model's decrypting types.
_stored_subscription = sa.table("subscription", sa.column("id", sa.String),
                                sa.column("url", sa.String), sa.column("routing_key", sa.String),
                                sa.column("secrets", sa.JSON))


async def reencrypt_subscriptions(session: AsyncSession) -> int:
    """Rewrite every subscription secret not under the newest key; how many rows changed.

    After a key rotation (MONITOR_SECRET_KEY=NEW,OLD) the rows still under OLD, and
    any legacy plaintext, are encrypted under NEW, so OLD can then be dropped. Raises
    SecretKeyError when a value opens with none of the keys. Caller's transaction.
    """
    cipher = cipher_for(session.get_bind().dialect)
    table = _stored_subscription

    def rotated(value: str | None) -> str | None:
        return None if value is None else cipher.rotate(value)

    changed = 0
    rows = (await session.exec(select(table.c.id, table.c.url, table.c.routing_key,
                                      table.c.secrets))).all()
    for sub_id, url, routing_key, secrets in rows:
        stored = [v for v in (url, routing_key, *(secrets or [])) if v is not None]
        if all(cipher.is_current(v) for v in stored):
            continue
        await session.exec(sa.update(table).where(table.c.id == sub_id).values(
            url=rotated(url), routing_key=rotated(routing_key),
            secrets=[cipher.rotate(s) for s in secrets or []]))
        changed += 1
    return changed


async def by_name(session: AsyncSession) -> dict[str, SubscriptionRow]:
    return {row.name: row for row in (await session.exec(select(SubscriptionRow))).all()}


def put(session: AsyncSession, row: SubscriptionRow) -> None:
    """Insert or update (caller's transaction)."""
    session.add(row)


async def get(session: AsyncSession, subscription_id: str) -> SubscriptionRow | None:
    return await session.get(SubscriptionRow, subscription_id)


async def listed(session: AsyncSession) -> Sequence[SubscriptionRow]:
    """Every subscription, oldest first."""
    return (await session.exec(select(SubscriptionRow)
                               .order_by(col(SubscriptionRow.created_at)))).all()


async def create(session: AsyncSession, row: SubscriptionRow) -> bool:
    """Insert; False when the name is taken (also settles two racing creates). Commits."""
    return await insert_unique(session, row)


async def delete(session: AsyncSession, subscription_id: str) -> None:
    """The subscription and its whole delivery log. Commits."""
    ids = select(DeliveryRow.id).where(col(DeliveryRow.subscription_id) == subscription_id)
    await session.exec(sa.delete(DeliveryAttemptRow)
                       .where(col(DeliveryAttemptRow.delivery_id).in_(ids)))
    await session.exec(sa.delete(DeliveryRow)
                       .where(col(DeliveryRow.subscription_id) == subscription_id))
    await session.exec(sa.delete(SubscriptionRow)
                       .where(col(SubscriptionRow.id) == subscription_id))
    await session.commit()



async def summaries(session: AsyncSession) -> Sequence[tuple[str, str, str, bool, str | None]]:
    """(id, name, kind, enabled, disabled_reason) by name: what may be shown to anyone,
    read without loading (so without decrypting) the encrypted columns."""
    t = SubscriptionRow
    shown: list[Any] = [t.id, t.name, t.kind, t.enabled, t.disabled_reason]
    rows = (await session.exec(select(t).options(load_only(*shown))
                               .order_by(col(t.name)))).all()
    return [(r.id, r.name, r.kind, r.enabled, r.disabled_reason) for r in rows]
