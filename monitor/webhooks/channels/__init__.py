"""Channels by subscription kind: one module each, named after its kind, listed once here.

Each module defines `CHANNEL` (see `base.Channel`): its rendering and classification, its
config model, its API request schema and its pacing. Everything else is derived from this
list: the config's `subscriptions` union, the API's request schema and OpenAPI document,
`channel_for`. A new channel is a new module and one line in `KINDS`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Literal, TypeAlias

from monitor.events.model import Event
from monitor.webhooks.channels.base import Channel, Destination, OutgoingRequest
from monitor.webhooks.channels.schema import CreateBase, SubscriptionBase, by_kind

KINDS = (
    "generic",
    "slack",
    "pagerduty",
    "teams",
    "discord",
)

CHANNELS: dict[str, Channel] = {kind: import_module(f"{__name__}.{kind}").CHANNEL
                                for kind in KINDS}

if TYPE_CHECKING:
    # What code may rely on whatever the kind; each kind's model adds its own keys.
    SubscriptionConfig: TypeAlias = SubscriptionBase
    SubscriptionCreate: TypeAlias = CreateBase
    SubscriptionKind: TypeAlias = str
else:
    SubscriptionConfig = by_kind([c.config for c in CHANNELS.values()])
    SubscriptionCreate = by_kind([c.create for c in CHANNELS.values()])
    SubscriptionKind = Literal[KINDS]


def channel_for(kind: str) -> Channel:
    try:
        return CHANNELS[kind]
    except KeyError:
        raise ValueError(f"unknown subscription kind {kind!r} "
                         f"(known: {', '.join(KINDS)})") from None


def render(event: Event, destination: Destination) -> OutgoingRequest | None:
    """The unsigned request for `event` to `destination`, or None: nothing to send."""
    return channel_for(destination.kind).render(event, destination)


__all__ = ["CHANNELS", "KINDS", "Channel", "Destination", "OutgoingRequest",
           "SubscriptionConfig", "SubscriptionCreate", "SubscriptionKind", "channel_for",
           "render"]
