"""Config-defined subscriptions, mirrored into the database at start.

The database is the one list the outbox reads: subscriptions from the config
file (source "config") and from the API (source "api"). A config subscription
without a `secret` gets one generated once and kept across restarts.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from monitor import store
from monitor.config import SubscriptionConfig
from monitor.ids import new_id
from monitor.service.context import AppContext
from monitor.store.tables import SubscriptionRow
from monitor.webhooks.channels.base import Destination
from monitor.webhooks.signing import generate_secret


async def sync_config_subscriptions(ctx: AppContext) -> None:
    """Mirror the config's subscriptions; replicas starting together may race once."""
    try:
        await _sync(ctx)
    except IntegrityError:  # another replica inserted the same name first: read it back
        await _sync(ctx)


async def _sync(ctx: AppContext) -> None:
    now = ctx.clock()
    wanted = {s.name: s for s in ctx.config.subscriptions}
    async with ctx.sessions() as session, session.begin():
        rows = await store.subscriptions.by_name(session)
        for name, sub in wanted.items():
            row = rows.get(name) or SubscriptionRow(id=new_id(), name=name, kind=sub.kind,
                                                    created_at=now, source="config")
            _apply(row, sub)
            store.subscriptions.put(session, row)
        for name, row in rows.items():
            # Removed from the config file: stop delivering, keep the history.
            if row.source == "config" and name not in wanted and row.enabled:
                row.enabled, row.disabled_reason = False, "removed from the config file"
                store.subscriptions.put(session, row)


def _apply(row: SubscriptionRow, sub: SubscriptionConfig) -> None:
    stored = Destination.from_config(sub)  # url and routing_key, for the kinds that have them
    row.kind = sub.kind
    row.url = stored.url
    row.events = list(sub.events)
    row.providers = list(sub.providers)
    row.routing_key = stored.routing_key
    configured = sub.secret.get_secret_value() if sub.secret else None
    if configured is not None and (not row.secrets or row.secrets[0] != configured):
        row.secrets = [configured]
    elif not row.secrets:
        row.secrets = [generate_secret()]
    if row.source == "config" and row.disabled_reason == "removed from the config file":
        row.enabled, row.disabled_reason = True, None
